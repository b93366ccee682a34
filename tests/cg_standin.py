"""A small stand-in for ``openmmcgml.cgmodel.CGModel`` used by the simulation and analysis tests.

It has the attributes and methods the simulation code uses: ``masses``, ``bead_names``,
``bead_types``, ``exclusions``, ``temperature``, ``mapping``, ``metadata``, ``n_beads``,
``prior_forces(n_replicas)`` and ``learned_force(n_replicas)``.  The priors are harmonic bonds
(and optionally angles) between consecutive beads; the learned term is a small random CGSchNet.
"""

import numpy as np
import openmm

#: Alanine dipeptide backbone beads C(ACE) N CA C N(NME): names, masses (amu), bond lengths (nm).
ALANINE_NAMES = ["C", "N", "CA", "C", "N"]
ALANINE_MASSES = [12.011, 14.007, 12.011, 12.011, 14.007]
ALANINE_BONDS = [0.133, 0.146, 0.152, 0.133]


class StandInCGModel:
    def __init__(self, bead_names, masses, bond_lengths, bond_k=50000.0, angle=None, angle_k=0.0, temperature=300.0,
                 learned=True, scale=1.0, seed=0, n_features=16, cutoff=1.0):
        import torch

        from openmmcgml.models import CGSchNet

        self.bead_names = list(bead_names)
        self.masses = list(masses)
        self.bond_lengths = list(bond_lengths)
        self.bond_k = float(bond_k)
        self.angle, self.angle_k = angle, float(angle_k)
        self.temperature = float(temperature)
        n = len(self.masses)
        self.bead_types = [i % 3 for i in range(n)]
        self.exclusions = [(i, i + 1) for i in range(n - 1)]
        self.mapping = {"kind": "stand-in", "beads": self.bead_names}
        self.metadata = {"system": "stand-in", "sequence": "X"}
        self.scale = float(scale)
        self.model = None
        if learned:
            torch.manual_seed(seed)
            self.model = CGSchNet(3, n_features=n_features, n_filters=n_features, n_rbf=8, n_interactions=2,
                                  cutoff=cutoff).double()

    @property
    def n_beads(self):
        return len(self.masses)

    def prior_forces(self, n_replicas=1):
        n = self.n_beads
        bonds = openmm.HarmonicBondForce()
        angles = openmm.HarmonicAngleForce()
        for r in range(n_replicas):
            first = r * n
            for i, length in enumerate(self.bond_lengths):
                bonds.addBond(first + i, first + i + 1, length, self.bond_k)
            if self.angle is not None:
                for i in range(n - 2):
                    angles.addAngle(first + i, first + i + 1, first + i + 2, self.angle, self.angle_k)
        return [bonds, angles] if self.angle is not None else [bonds]

    def learned_force(self, n_replicas=1):
        if self.model is None:
            return None
        n = self.n_beads
        types = self.bead_types * n_replicas
        molecules = [r for r in range(n_replicas) for _ in range(n)]
        exclusions = [(r * n + i, r * n + j) for r in range(n_replicas) for i, j in self.exclusions]
        return self.model.to_force(types, molecules, exclusions, scale=self.scale)


def alanine_standin(**kwargs):
    kwargs.setdefault("angle", 1.95)
    kwargs.setdefault("angle_k", 400.0)
    return StandInCGModel(ALANINE_NAMES, ALANINE_MASSES, ALANINE_BONDS, **kwargs)


def alanine_structure():
    """A 5-bead backbone C N CA C N with phi = -60 deg, psi = -45 deg (nm)."""
    from openmmcgml.analysis.geometry import build_chain

    return build_chain(ALANINE_BONDS, [1.95, 1.95, 1.95], [np.radians(-60.0), np.radians(-45.0)])


def write_cg_dataset(path, runs, bead_names, temperature=300.0, timestep=0.002, save_interval=100, system="stand-in"):
    """Write CG frames in the docs/data-format.md layout with plain h5py (independent of the writer).

    ``runs`` is a list of arrays (n_frames, n_beads, 3) in nm, one per independent run.
    """
    import json

    import h5py

    coordinates = np.concatenate(runs).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle.attrs.update({
            "format": "openmm-cgml-trajectory", "format_version": 1, "resolution": "coarse-grained",
            "system": system, "sequence": "", "forcefield": json.dumps([]), "temperature": float(temperature),
            "timestep": float(timestep), "save_interval": int(save_interval), "length_unit": "nm",
            "force_unit": "kJ/mol/nm", "energy_unit": "kJ/mol", "mapping": json.dumps({}),
            "bead_names": json.dumps(list(bead_names)), "bead_types": json.dumps(list(range(len(bead_names)))),
            "topology_pdb": "",
        })
        handle["coordinates"] = coordinates
        handle["forces"] = np.zeros_like(coordinates)
        handle["potential_energy"] = np.full(len(coordinates), np.nan)
        handle["trajectory"] = np.concatenate([np.full(len(r), k, dtype=np.int32) for k, r in enumerate(runs)])
        handle["step"] = np.concatenate([np.arange(1, len(r) + 1, dtype=np.int64) * save_interval for r in runs])
    return path


def real_alanine_cgmodel(seed=0):
    """The same alanine stand-in as an ``openmmcgml.cgmodel.CGModel`` (None where that module is missing)."""
    try:
        from openmmcgml.cgmodel import CGModel
        from openmmcgml.priors import HarmonicAngles, HarmonicBonds, PriorSet
    except ImportError:
        return None
    standin = alanine_standin(seed=seed)
    priors = PriorSet(5, terms=[
        HarmonicBonds([[i, i + 1] for i in range(4)], k=[standin.bond_k] * 4, r0=ALANINE_BONDS),
        HarmonicAngles([[i, i + 1, i + 2] for i in range(3)], k=[standin.angle_k] * 3, theta0=[standin.angle] * 3),
    ])
    return CGModel(standin.model, priors, bead_types=standin.bead_types, bead_names=ALANINE_NAMES,
                   masses=ALANINE_MASSES, temperature=300.0, metadata={"system": "alanine-dipeptide"})
