"""Shared tools of the plugin tests: systems, contexts and the float64 torch reference."""

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmmcgml.models import CGSchNet

KJ = unit.kilojoule_per_mole
KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def platform_available(name):
    try:
        openmm.Platform.getPlatformByName(name)
        return True
    except Exception:
        return False


# (platform, properties, relative force tolerance).  DESIGN: < 1e-6 in double, < 1e-4 in single.
PLATFORM_CASES = [
    pytest.param("Reference", {}, 1e-6, id="Reference"),
    # The CPU platform's kernel computes in single precision (energies summed in double).
    pytest.param("CPU", {}, 1e-4, id="CPU"),
    pytest.param("OpenCL", {"Precision": "double"}, 1e-6, id="OpenCL-double",
                 marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")),
    pytest.param("OpenCL", {"Precision": "single"}, 1e-4, id="OpenCL-single",
                 marks=pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")),
    pytest.param("CUDA", {"Precision": "double"}, 1e-6, id="CUDA-double",
                 marks=pytest.mark.skipif(not platform_available("CUDA"), reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")),
    pytest.param("CUDA", {"Precision": "single"}, 1e-4, id="CUDA-single",
                 marks=pytest.mark.skipif(not platform_available("CUDA"), reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")),
]


def make_model(seed=0, n_types=3, n_features=16, n_filters=12, n_rbf=10, n_interactions=2, cutoff=1.0,
               activation="ssp", rbf="gaussian", rbf_lower_cutoff=0.0, output_hidden=(16,), weight_scale=1.0):
    """A small float64 CGSchNet with random weights (biases included, so every term matters)."""
    torch.manual_seed(seed)
    model = CGSchNet(n_types=n_types, n_features=n_features, n_filters=n_filters, n_rbf=n_rbf,
                     n_interactions=n_interactions, cutoff=cutoff, activation=activation, rbf=rbf,
                     rbf_lower_cutoff=rbf_lower_cutoff, output_hidden=output_hidden).double()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "rbf" in name:
                continue
            parameter.normal_(0.0, weight_scale / np.sqrt(max(parameter.shape[-1], 1)))
    return model


def random_positions(n_beads, box_size, seed=0, min_distance=0.12):
    """Random positions in a cube, keeping beads at least `min_distance` apart."""
    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < n_beads:
        candidate = rng.uniform(0, box_size, 3)
        if all(np.linalg.norm(candidate - p) > min_distance for p in positions):
            positions.append(candidate)
    return np.array(positions)


def make_system(n_particles, force, box=None, mass=100.0):
    system = openmm.System()
    for _ in range(n_particles):
        system.addParticle(mass)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(force)
    return system


def make_context(system, platform, properties=None, integrator=None):
    integrator = integrator or openmm.VerletIntegrator(0.001)
    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties or {})


def plugin_energy_forces(context, positions, box=None, groups=-1):
    if box is not None:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return (state.getPotentialEnergy().value_in_unit(KJ),
            state.getForces(asNumpy=True).value_in_unit(KJ_NM))


def torch_energy_forces(model, positions, bead_types, molecules=None, exclusions=None, box=None):
    energy, forces = model.energy_and_forces(torch.as_tensor(positions, dtype=torch.float64), bead_types,
                                             molecules, exclusions,
                                             None if box is None else torch.as_tensor(box, dtype=torch.float64))
    return float(energy), forces.numpy()


def relative_error(actual, expected):
    return float(np.linalg.norm(np.asarray(actual) - expected) / np.linalg.norm(expected))
