"""The bond graph of a CG molecule and the bead tuples of its prior terms.

Bonds, angles, dihedrals, pairs of dihedrals and repulsion pairs, derived from the bonds; and
the validation of bead-index arrays that every term uses.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["angle_list", "chain_bonds", "chain_internal_coordinates", "dihedral_list", "dihedral_map_modes",
           "dihedral_pairs", "repulsion_pairs"]


def chain_bonds(n_beads: int) -> np.ndarray:
    """The bonds ``(i, i + 1)`` of a linear chain, shape (n_beads - 1, 2).

    >>> chain_bonds(4).tolist()
    [[0, 1], [1, 2], [2, 3]]
    """
    n_beads = int(n_beads)
    return np.stack([np.arange(n_beads - 1), np.arange(1, n_beads)], axis=1).astype(np.int64).reshape(-1, 2)


def _check_indices(indices, arity: int, n_beads: int, name: str) -> np.ndarray:
    array = np.asarray(indices if indices is not None else np.zeros((0, arity)))
    if array.size == 0:
        return np.zeros((0, arity), dtype=np.int64)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer bead indices (got dtype {array.dtype})")
    array = array.astype(np.int64)
    if array.ndim != 2 or array.shape[1] != arity:
        raise ValueError(f"{name} must have shape (n, {arity}) (got {array.shape})")
    bad = np.flatnonzero(((array < 0) | (array >= n_beads)).any(axis=1))
    if len(bad):
        raise ValueError(f"{name} entry {int(bad[0])} {array[bad[0]].tolist()} refers to a bead out of range "
                         f"[0, {n_beads})")
    for row, item in enumerate(array.tolist()):
        if len(set(item)) != arity:
            raise ValueError(f"{name} entry {row} {item} uses a bead more than once")
    return array


def chain_internal_coordinates(n_beads: int, bonds) -> tuple:
    """The internal coordinates of an unbranched chain: its ``n - 1`` bonds, ``n - 2`` angles and
    ``n - 3`` dihedrals along the chain, ``3 n - 6`` in all (a Z-matrix).

    Parameters
    ----------
    n_beads : int
        At least 4.
    bonds : array_like of int, shape (n_beads - 1, 2)
        Bonds that join the beads into one chain, in any order and direction.

    Returns
    -------
    bonds, angles, dihedrals : ndarray of int64, shapes (n - 1, 2), (n - 2, 3), (n - 3, 4)
        Tuples of consecutive beads along the chain, from the end with the lower index.

    Raises
    ------
    ValueError
        If the bonds do not form one unbranched chain through every bead.

    Examples
    --------
    >>> b, a, d = chain_internal_coordinates(5, [[3, 4], [1, 2], [0, 1], [2, 3]])
    >>> a.tolist(), d.tolist()
    ([[0, 1, 2], [1, 2, 3], [2, 3, 4]], [[0, 1, 2, 3], [1, 2, 3, 4]])
    """
    n_beads = int(n_beads)
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    if n_beads < 4:
        raise ValueError(f"a chain needs at least 4 beads to have a dihedral (got {n_beads})")
    neighbours = _neighbours(n_beads, bonds)
    ends = [i for i, n in enumerate(neighbours) if len(n) == 1]
    if len(bonds) != n_beads - 1 or len(ends) != 2 or any(len(n) > 2 for n in neighbours):
        raise ValueError(f"the {len(bonds)} bonds do not join the {n_beads} beads into one unbranched chain")
    order, previous = [ends[0]], -1
    while len(order) < n_beads:
        following = [j for j in neighbours[order[-1]] if j != previous]
        if not following:
            raise ValueError(f"the {len(bonds)} bonds do not join the {n_beads} beads into one unbranched chain")
        previous = order[-1]
        order.append(following[0])
    path = np.asarray(order, dtype=np.int64)
    return tuple(np.stack([path[k:n_beads - arity + 1 + k] for k in range(arity)], axis=1)
                 for arity in (2, 3, 4))


def _neighbours(n_beads: int, bonds: np.ndarray) -> list[list[int]]:
    neighbours = [[] for _ in range(n_beads)]
    for i, j in bonds.tolist():
        neighbours[i].append(j)
        neighbours[j].append(i)
    return [sorted(n) for n in neighbours]


def angle_list(n_beads: int, bonds) -> np.ndarray:
    """Every angle ``(i, j, k)`` of the bond graph (``i-j`` and ``j-k`` bonded, ``i < k``), sorted.

    >>> angle_list(4, chain_bonds(4)).tolist()
    [[0, 1, 2], [1, 2, 3]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    neighbours = _neighbours(n_beads, bonds)
    angles = [(i, j, k) for j in range(n_beads) for i in neighbours[j] for k in neighbours[j] if i < k]
    angles.sort(key=lambda a: (min(a[0], a[2]), a[1], max(a[0], a[2])))
    return np.array(angles, dtype=np.int64).reshape(-1, 3)


def dihedral_list(n_beads: int, bonds) -> np.ndarray:
    """Every proper dihedral ``(i, j, k, l)`` of the bond graph (a path of three bonds), ``i < l``.

    >>> dihedral_list(5, chain_bonds(5)).tolist()
    [[0, 1, 2, 3], [1, 2, 3, 4]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    neighbours = _neighbours(n_beads, bonds)
    dihedrals = set()
    for j, k in bonds.tolist():
        for i in neighbours[j]:
            for l in neighbours[k]:
                if len({i, j, k, l}) == 4:
                    dihedrals.add((i, j, k, l) if i < l else (l, k, j, i))
    return np.array(sorted(dihedrals), dtype=np.int64).reshape(-1, 4)


def dihedral_pairs(n_beads: int, bonds) -> np.ndarray:
    """Every pair of dihedrals that share three beads, as the five beads ``(i, j, k, l, m)`` of
    ``phi = (i, j, k, l)`` and ``psi = (j, k, l, m)``; for a chain, consecutive dihedrals.

    >>> dihedral_pairs(6, chain_bonds(6)).tolist()
    [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    """
    dihedrals = [tuple(d) for d in dihedral_list(n_beads, bonds).tolist()]
    oriented = set(dihedrals) | {d[::-1] for d in dihedrals}
    pairs = set()
    for i, j, k, l in oriented:
        for m in range(n_beads):
            if m not in (i, j, k, l) and (j, k, l, m) in oriented:
                pair = (i, j, k, l, m)
                pairs.add(min(pair, pair[::-1]))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 5)


def dihedral_map_modes(order: int) -> list:
    """The Fourier modes ``(m, n)`` of a dihedral map of the given order: ``0 <= m <= order``,
    ``-order <= n <= order``, one of each pair ``(m, n), (-m, -n)``, without ``(0, 0)``.

    >>> dihedral_map_modes(1)
    [(0, 1), (1, -1), (1, 0), (1, 1)]
    >>> len(dihedral_map_modes(2)), len(dihedral_map_modes(3))
    (12, 24)
    """
    order = int(order)
    return [(m, n) for m in range(order + 1) for n in range(-order, order + 1) if (m, n) > (0, 0)]


def _graph_distances(n_beads: int, bonds: np.ndarray) -> np.ndarray:
    """Numbers of bonds between beads (breadth-first search); unconnected pairs get n_beads."""
    neighbours = _neighbours(n_beads, bonds)
    distance = np.full((n_beads, n_beads), n_beads, dtype=np.int64)
    for start in range(n_beads):
        distance[start, start] = 0
        queue = deque([start])
        while queue:
            i = queue.popleft()
            for j in neighbours[i]:
                if distance[start, j] > distance[start, i] + 1:
                    distance[start, j] = distance[start, i] + 1
                    queue.append(j)
    return distance


def repulsion_pairs(n_beads: int, bonds, min_separation: int = 3) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, at least ``min_separation`` bonds apart (or not connected).

    With the default 3, bonded (1-2) and angle (1-3) pairs are left out.

    >>> repulsion_pairs(5, chain_bonds(5)).tolist()
    [[0, 3], [0, 4], [1, 4]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    distance = _graph_distances(n_beads, bonds)
    i, j = np.triu_indices(n_beads, 1)
    keep = distance[i, j] >= int(min_separation)
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64).reshape(-1, 2)
