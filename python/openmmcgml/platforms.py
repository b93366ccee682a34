"""A platform check (``cgml platforms``): a CG chain with a random CGSchNet force on every platform,
compared with the Reference platform, with steps/s.  ``chain_positions`` and ``build_chain_system``
make the test chains that tests and benchmarks share."""

import time

import numpy as np
import openmm
from openmm import unit

#: Distance between consecutive beads of the test chain (a C-alpha trace), in nm.
BOND_LENGTH = 0.38
#: Harmonic bond constant of the test chain, in kJ/mol/nm^2.
BOND_K = 10000.0
#: Bead mass of the test chain (about one residue), in amu.
BEAD_MASS = 110.0


def chain_positions(n_beads, n_replicas=1, seed=0, spacing=4.0):
    """Positions (nm) of `n_replicas` self-avoiding random-walk chains of `n_beads` beads.

    Replicas are placed `spacing` nm apart along x; they are separate molecules of the force,
    so the spacing only matters for visualisation.
    """
    rng = np.random.default_rng(seed)
    chains = []
    for replica in range(n_replicas):
        chain = [np.zeros(3)]
        while len(chain) < n_beads:
            step = rng.normal(size=3)
            candidate = chain[-1] + BOND_LENGTH * step / np.linalg.norm(step)
            # Keep non-bonded beads apart so the chain starts without clashes.
            if all(np.linalg.norm(candidate - other) > 0.45 for other in chain[:-1]):
                chain.append(candidate)
        chains.append(np.array(chain) + [replica * spacing, 0.0, 0.0])
    return np.concatenate(chains)


def build_chain_system(model, n_beads, n_replicas=1, n_types=None):
    """A System of `n_replicas` bead chains with harmonic bonds and `model` as a CGSchNetForce.

    Bead types cycle through the model's types; bonded neighbours are excluded from the learned
    force (the bond term describes them), and each chain is its own molecule.

    Returns
    -------
    system : openmm.System
    force : openmmcgml.forces.CGSchNetForce
        The learned force, already added to `system`.
    """
    n_types = n_types or model.n_types
    system = openmm.System()
    bonds = openmm.HarmonicBondForce()
    bead_types, molecules, exclusions = [], [], []
    for replica in range(n_replicas):
        first = replica * n_beads
        for i in range(n_beads):
            system.addParticle(BEAD_MASS)
            bead_types.append(i % n_types)
            molecules.append(replica)
            if i > 0:
                bonds.addBond(first + i - 1, first + i, BOND_LENGTH, BOND_K)
                exclusions.append((first + i - 1, first + i))
    system.addForce(bonds)
    force = model.to_force(bead_types=bead_types, molecules=molecules, exclusions=exclusions)
    system.addForce(force)
    return system, force


def available_platforms():
    """Names of the OpenMM platforms that have the plugin's kernels."""
    from . import plugin_status

    return [name for name, ok in plugin_status()["platforms"].items() if ok]


def unavailable_platforms():
    """The plugin's platforms without kernels here, each with why (``"not built: ..."``, ``"load failed: ..."``)."""
    from . import plugin_status

    reasons = {}
    for name, report in plugin_status()["plugin_platforms"].items():
        if report["state"] != "has kernels":
            reasons[name] = report["state"] + (f": {report['detail']}" if report["detail"] else "")
    return reasons


class PlatformUnavailableError(ValueError):
    """A requested platform does not exist or cannot run the plugin's force."""


def _check_requested_platforms(requested):
    """Refuse a requested platform that cannot run the plugin's force, saying why."""
    available = available_platforms()
    reasons = unavailable_platforms()
    for name in requested:
        if name in available:
            continue
        if name in reasons:
            raise PlatformUnavailableError(f"platform {name} cannot run the plugin's force: {reasons[name]}")
        raise PlatformUnavailableError(f"platform {name!r} is not an OpenMM platform with the plugin's kernels "
                         f"(available: {', '.join(available)})")


def run_platform_check(n_beads=10, n_replicas=1, n_steps=1000, platforms=None, seed=0, print_fn=print):
    """Run a CG chain with a random CGSchNet on each platform and report agreement and speed.

    Without `platforms`, every platform with the plugin's kernels runs, and each of the plugin's
    other platforms is named with the reason it has none (not built, failed to load).

    Returns
    -------
    list of dict
        One row per platform: ``platform``, ``energy`` (kJ/mol), ``energy_error`` (relative to
        Reference), ``steps_per_second``.

    Raises
    ------
    PlatformUnavailableError
        If a platform in `platforms` does not exist or has no kernels of the plugin.
    """
    import torch

    from .models import CGSchNet

    if platforms:
        _check_requested_platforms(platforms)
    torch.manual_seed(seed)
    model = CGSchNet(n_types=4, n_features=64, n_filters=64, n_rbf=32, n_interactions=3, cutoff=1.2)
    system, _ = build_chain_system(model, n_beads, n_replicas)
    positions = chain_positions(n_beads, n_replicas, seed=seed)
    requested = bool(platforms)
    platforms = platforms or available_platforms()
    if "Reference" not in platforms:
        platforms = ["Reference"] + list(platforms)
    print_fn(f"CG chain: {n_replicas} x {n_beads} beads, CGSchNet with 3 blocks of 64 features, {n_steps} Langevin steps")
    if not requested:
        for name, reason in unavailable_platforms().items():
            print_fn(f"not checked: {name} ({reason})")
    rows = []
    reference_energy = None
    for name in platforms:
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.01 * unit.picoseconds)
        integrator.setRandomNumberSeed(seed + 1)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(name))
        context.setPositions(positions)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        if reference_energy is None:
            reference_energy = energy
        integrator.step(10)  # compile kernels and warm caches outside the timed region
        context.getState(getEnergy=True)
        start = time.perf_counter()
        integrator.step(n_steps)
        final = context.getState(getEnergy=True, getPositions=True)
        elapsed = time.perf_counter() - start
        if not np.all(np.isfinite(final.getPositions(asNumpy=True).value_in_unit(unit.nanometer))):
            raise RuntimeError(f"the simulation on {name} produced non-finite positions")
        rows.append(
            {
                "platform": name,
                "energy": energy,
                "energy_error": abs(energy - reference_energy) / max(abs(reference_energy), 1e-12),
                "steps_per_second": n_steps / elapsed,
            }
        )
        del context, integrator
    print_fn(f"{'platform':<10} {'energy (kJ/mol)':>16} {'rel. diff vs Reference':>24} {'steps/s':>10}")
    for row in rows:
        print_fn(
            f"{row['platform']:<10} {row['energy']:>16.6f} {row['energy_error']:>24.2e} {row['steps_per_second']:>10.1f}"
        )
    return rows
