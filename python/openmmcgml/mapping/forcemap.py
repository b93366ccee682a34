"""Force maps that are correct for a linear coordinate map, with or without bond constraints.

Let the coarse-grained coordinates be ``R = C x`` (``C``: n_beads x n_atoms, each row summing to 1)
and the mapped forces ``F = W f`` (``W``: n_beads x n_atoms), where ``f`` are the all-atom forces
of the force field, as OpenMM's ``getState(getForces=True)`` returns them (constraint forces are
not included). ``F`` is an unbiased sample of the CG mean force ``-dA/dR`` (so force matching
fits the CG free energy) when

1. ``W C^T = I`` (each bead's force map picks out its own coordinate), and
2. every constraint is invisible to ``W``: for each constrained pair (i, j), ``W[:, i] == W[:, j]``.
   The constraint force on a pair is equal and opposite along the bond, so equal weights cancel
   it; equivalently the direction ``W^T`` moves each constraint group rigidly and never stretches a
   constrained bond (Ciccotti, Kapral & Vanden-Eijnden, ChemPhysChem 6, 1809 (2005); Kraemer et al.,
   J. Chem. Theory Comput. 19, 3496 (2023)).

The naive "slice" of the mapped atoms' forces meets condition 1 but not condition 2 as soon as a
mapped atom carries a constrained hydrogen (CA-HA with ``constraints=HBonds``): it drops the
constraint force, which transmits the forces on the hydrogen to the heavy atom, and the mean of
the sliced force is then not the gradient of any CG free energy. The "aggregate" map used by
default gives each bead the sum of the forces of the constraint groups of its atoms (the heavy
atom plus its constrained hydrogens), which satisfies both conditions.

Examples
--------
>>> import numpy as np
>>> groups = constraint_groups(4, [(0, 1), (2, 3)])
>>> groups.tolist()
[0, 0, 1, 1]
>>> C = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])       # beads at atoms 0 and 2
>>> aggregate_force_weights(C, [(0, 1), (2, 3)]).tolist()
[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
>>> check_force_map(C, C, [(0, 1)])
Traceback (most recent call last):
...
ValueError: the force map does not cancel constraint forces: atoms 0 and 1 are constrained but bead 0 weights their forces 1 and 0 (use force_map='aggregate', which sums each constraint group)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FORCE_MAPS",
    "aggregate_force_weights",
    "check_force_map",
    "constraint_groups",
    "force_weights",
    "slice_force_weights",
    "system_constraints",
]

#: Force maps :func:`force_weights` knows: "aggregate" (constraint-aware, the default) and
#: "slice" (each bead's own atoms; correct only when no constraint crosses a bead's atom set).
FORCE_MAPS = ("aggregate", "slice")


def system_constraints(system):
    """Constrained atom pairs of an OpenMM System, shape ``(n_constraints, 2)``."""
    pairs = [system.getConstraintParameters(index)[:2] for index in range(system.getNumConstraints())]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _pairs(constraints):
    if constraints is None:
        return np.zeros((0, 2), dtype=np.int64)
    return np.asarray(constraints, dtype=np.int64).reshape(-1, 2)


def constraint_groups(n_atoms, constraints):
    """Label each atom with its constraint group: atoms connected by constraints share a label.

    Labels are 0, 1, 2, ... in order of each group's first atom; an atom without constraints is
    a group of its own.

    Raises
    ------
    ValueError
        If a constraint names an atom outside ``[0, n_atoms)``.
    """
    pairs = _pairs(constraints)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n_atoms):
        raise ValueError(f"a constraint names atom {int(pairs.max()) if pairs.max() >= n_atoms else int(pairs.min())}, outside [0, {n_atoms})")
    parent = np.arange(n_atoms)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        root_i, root_j = find(int(i)), find(int(j))
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    roots = np.array([find(i) for i in range(n_atoms)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def slice_force_weights(coordinate_weights):
    """The naive force map: each bead sums the forces of the atoms of its own coordinate map.

    For a single-atom bead this is the force on that atom. Valid only when no constraint joins
    a bead's atom to an atom outside it.
    """
    coordinate_weights = np.asarray(coordinate_weights, dtype=np.float64)
    return (coordinate_weights != 0).astype(np.float64)


def aggregate_force_weights(coordinate_weights, constraints):
    """The constraint-aware force map: each bead sums the forces of every atom in the constraint
    groups of its atoms (for a CA bead with ``HBonds``: CA and HA).

    Parameters
    ----------
    coordinate_weights : array_like
        ``C``, shape ``(n_beads, n_atoms)``.
    constraints : array_like
        Constrained atom pairs.

    Raises
    ------
    ValueError
        If two beads reach the same constraint group (no force map can then separate them: map
        them to one bead, or run the oracle with fewer constraints).
    """
    coordinate_weights = np.asarray(coordinate_weights, dtype=np.float64)
    n_beads, n_atoms = coordinate_weights.shape
    labels = constraint_groups(n_atoms, constraints)
    weights = np.zeros_like(coordinate_weights)
    owner = {}
    for bead in range(n_beads):
        groups = np.unique(labels[coordinate_weights[bead] != 0])
        for group in groups:
            if group in owner and owner[group] != bead:
                atoms = np.flatnonzero(labels == group).tolist()
                raise ValueError(
                    f"beads {owner[group]} and {bead} both contain atoms of the constraint group {atoms}; "
                    "a force map cannot separate them (put them in one bead, or constrain fewer bonds)"
                )
            owner[group] = bead
        weights[bead, np.isin(labels, groups)] = 1.0
    return weights


def force_weights(coordinate_weights, constraints=None, force_map="aggregate"):
    """Force weights ``W`` for a coordinate map ``C`` by the named rule (see :data:`FORCE_MAPS`)."""
    if force_map == "aggregate":
        return aggregate_force_weights(coordinate_weights, constraints)
    if force_map == "slice":
        return slice_force_weights(coordinate_weights)
    raise ValueError(f"unknown force map {force_map!r}; choose one of {', '.join(FORCE_MAPS)}")


def _number(value):
    return f"{value:.6g}"


def check_force_map(coordinate_weights, force_weights, constraints=None, atol=1e-8):
    """Check that ``F = W f`` is a valid mean-force estimator for ``R = C x``.

    Raises
    ------
    ValueError
        Naming the first violation: a coordinate-map row that does not sum to 1, ``W C^T != I``,
        or a constrained pair with unequal weights in some bead.
    """
    C = np.asarray(coordinate_weights, dtype=np.float64)
    W = np.asarray(force_weights, dtype=np.float64)
    if C.ndim != 2 or W.shape != C.shape:
        raise ValueError(f"force weights have shape {W.shape} but coordinate weights have shape {C.shape}; they must be equal")
    sums = C.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        raise ValueError(f"the coordinate weights of bead {int(bad[0])} sum to {_number(sums[bad[0]])}, not 1")
    product = W @ C.T
    difference = np.abs(product - np.eye(len(C)))
    if difference.max(initial=0.0) > atol:
        b, c = np.unravel_index(np.argmax(difference), difference.shape)
        raise ValueError(
            f"the force map does not invert the coordinate map: (W C^T)[{b}, {c}] = {_number(product[b, c])}, expected {int(b == c)}"
        )
    for i, j in _pairs(constraints):
        unequal = np.flatnonzero(np.abs(W[:, i] - W[:, j]) > atol)
        if unequal.size:
            bead = int(unequal[0])
            raise ValueError(
                f"the force map does not cancel constraint forces: atoms {int(i)} and {int(j)} are constrained but bead {bead} "
                f"weights their forces {_number(W[bead, i])} and {_number(W[bead, j])} (use force_map='aggregate', which sums "
                "each constraint group)"
            )
