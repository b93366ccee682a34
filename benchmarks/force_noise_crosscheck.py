"""Cross-check of the force-noise estimator on alanine dipeptide against mean forces measured
directly by restrained all-atom runs.

1. All-atom data of alanine dipeptide (the oracle: amber99sbildn + OBC implicit solvent, 300 K,
   Langevin, HBonds constraints) mapped to the demo's 5-bead backbone map (C N CA C N) with the
   demo's force map; :func:`openmmcgml.analysis.force_noise.estimate_force_noise` estimates the
   noise of the mapped forces from this dataset alone.
2. At ``--configs`` frames of the dataset (evenly spaced), the all-atom system is run with the five
   bead atoms held exactly in place (mass 0: OpenMM's integrators leave massless particles where
   they are, so the CG configuration is fixed without a restraint force, which a stiff harmonic
   restraint could not do: its fluctuations would move the stiff CG bonds and add mean-force
   variance of the size of the noise), the rest moving; the mapped force is recorded every
   ``--sample-every`` steps.  Hydrogens bonded to bead atoms move on their force-field bonds
   instead of constraints (OpenMM allows no constraint to a massless particle), at half the time
   step.  Its average is the mean force at that
   CG configuration, and its variance around that average is the noise there.
3. The table compares the dataset estimate with the average of those variances over the
   configurations (weighted as the dataset's frames, since the configurations are frames of it),
   and with a third estimate: the squared difference between the dataset's own instantaneous
   mapped force at each chosen frame and the measured mean force there.

Run (about 5 minutes on one core with the defaults)::

    python benchmarks/force_noise_crosscheck.py --output-dir /tmp/force-noise-crosscheck

``--aa-data`` reuses an all-atom HDF5 file of alanine dipeptide written by ``cgml oracle`` instead
of generating one.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time

import numpy as np


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="force-noise-crosscheck")
    parser.add_argument("--aa-data", help="existing all-atom HDF5 file of alanine dipeptide (else generated)")
    parser.add_argument("--runs", type=int, default=4, help="all-atom runs for the dataset")
    parser.add_argument("--ns-per-run", type=float, default=1.0)
    parser.add_argument("--force-map", default="partition", help="aggregate, partition or slice (the demo: partition)")
    parser.add_argument("--configs", type=int, default=24, help="fixed CG configurations")
    parser.add_argument("--ps-per-config", type=float, default=50.0)
    parser.add_argument("--equilibration-ps", type=float, default=2.0)
    parser.add_argument("--sample-every", type=int, default=20, help="steps (1 fs) between force samples")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def all_atom_data(arguments):
    """The all-atom file (generated unless given)."""
    from openmmcgml.data.oracle import generate_oracle

    if arguments.aa_data:
        return arguments.aa_data
    os.makedirs(arguments.output_dir, exist_ok=True)
    path = os.path.join(arguments.output_dir, "aa.h5")
    steps = int(round(arguments.ns_per_run * 1000 / 0.002 / 100)) * 100
    start = time.time()
    result = generate_oracle("alanine-dipeptide", n_steps=steps, save_every=100, seed=arguments.seed, out=path,
                             n_runs=arguments.runs, equilibration_steps=5000, force_map=arguments.force_map)
    print(f"all-atom data: {result.n_frames} frames ({arguments.runs} x {arguments.ns_per_run} ns) "
          f"in {time.time() - start:.0f} s -> {path}")
    return path


def main():
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    from openmmcgml.analysis.force_noise import estimate_force_noise
    from openmmcgml.data.oracle import create_oracle_system
    from openmmcgml.data.trajectory import read_trajectory
    from openmmcgml.mapping import build_map, map_trajectory, system_constraints

    arguments = parse_arguments()
    aa = read_trajectory(all_atom_data(arguments))
    meta = aa.metadata
    topology = app.PDBFile(io.StringIO(meta.topology_pdb)).topology
    constraints = meta.extra.get("constraints", "HBonds")
    system = create_oracle_system(topology, meta.forcefield, constraints=constraints,
                                  hydrogen_mass=meta.extra.get("hydrogen_mass"))
    cg_map = build_map("alanine-dipeptide", topology, system_constraints(system), force_map=arguments.force_map)
    cg = map_trajectory(aa, cg_map)

    # 1. The estimate from the dataset alone.
    start = time.time()
    estimate = estimate_force_noise(cg.coordinates, cg.forces, cg.trajectory)
    seconds_estimate = time.time() - start

    # 2. Fixed CG configurations: the bead atoms (one atom per bead in this map) made massless.
    weights = cg_map.coordinate_weights
    bead_atoms = [int(np.argmax(row)) for row in weights]
    if not all(np.isclose(weights[b, atom], 1.0) for b, atom in enumerate(bead_atoms)):
        raise ValueError("this cross-check needs a map whose beads are single atoms")
    # OpenMM refuses constraints on massless particles: the bonds of hydrogens to bead atoms
    # become flexible (their force-field bond terms kept, flexibleConstraints), the other HBonds
    # constraints stay, and the time step is halved for the free X-H vibrations.  With the
    # aggregate and partition force maps a hydrogen's force goes to the bead of its heavy atom,
    # so that bond force cancels in the mapped force.
    fixed = app.ForceField(*meta.forcefield).createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds if constraints == "HBonds" else None,
        removeCMMotion=False, flexibleConstraints=True)
    for index in reversed(range(fixed.getNumConstraints())):
        i, j, _ = fixed.getConstraintParameters(index)
        if i in bead_atoms or j in bead_atoms:
            fixed.removeConstraint(index)
    for atom in bead_atoms:
        fixed.setParticleMass(atom, 0.0)
    temperature = meta.temperature
    friction = float(meta.extra.get("friction", 1.0))
    timestep = meta.timestep / 2
    n_steps = int(round(arguments.ps_per_config / timestep))
    n_equilibration = int(round(arguments.equilibration_ps / timestep))
    frames = np.linspace(0, aa.n_frames - 1, arguments.configs).round().astype(int)
    # Reference: the fastest platform for 22 atoms (as the oracle's "auto").
    platform_ = openmm.Platform.getPlatformByName("Reference")

    rows = []
    start = time.time()
    for number, frame in enumerate(frames):
        integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction / unit.picosecond,
                                                     timestep * unit.picosecond)
        integrator.setRandomNumberSeed(1000 + number)
        context = openmm.Context(fixed, integrator, platform_)
        context.setPositions(aa.coordinates[frame])
        context.setVelocitiesToTemperature(temperature * unit.kelvin, 2000 + number)
        context.applyConstraints(1e-6)
        integrator.step(n_equilibration)
        samples = []
        for _ in range(n_steps // arguments.sample_every):
            integrator.step(arguments.sample_every)
            state = context.getState(getForces=True)
            samples.append(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        moved = float(np.abs(positions[bead_atoms] - aa.coordinates[frame][bead_atoms]).max())
        if moved > 1e-5:
            raise RuntimeError(f"the fixed bead atoms moved by {moved} nm at configuration {number}")
        mapped = cg_map.map_forces(np.asarray(samples))
        mean = mapped.mean(axis=0)
        variance = float(np.mean((mapped - mean) ** 2)) * len(mapped) / (len(mapped) - 1)
        # The dataset's own instantaneous mapped force at that frame: an independent sample.
        dataset_deviation = float(np.mean((cg.forces[frame] - mean) ** 2))
        rows.append((frame, variance, dataset_deviation, len(mapped)))
        del context, integrator
    seconds_direct = time.time() - start

    variances = np.array([row[1] for row in rows])
    deviations = np.array([row[2] for row in rows])
    n = len(rows)
    print()
    print(f"alanine dipeptide, {arguments.force_map} force map, {cg.n_frames} CG frames, "
          f"{n} fixed configurations x {arguments.ps_per_config:g} ps ({rows[0][3]} force samples each)")
    print(f"{'configuration (frame)':>22} {'noise var (direct)':>20} {'|F_data - F_mean|^2/15':>24}")
    for frame, variance, deviation, _ in rows:
        print(f"{frame:>22d} {variance:>20.4g} {deviation:>24.4g}")
    print()
    print(f"{'estimate':<58} {'noise variance (kJ/mol/nm)^2':>30}")
    print(f"{'dataset estimator (nearest-neighbour pairs)':<58} {estimate.variance:>16.4g} ± {estimate.error:.2g}")
    print(f"{'direct: mean over configurations of Var(F | x)':<58} {variances.mean():>16.4g} ± "
          f"{variances.std(ddof=1) / np.sqrt(n):.2g}")
    print(f"{'direct: dataset force vs measured mean force':<58} {deviations.mean():>16.4g} ± "
          f"{deviations.std(ddof=1) / np.sqrt(n):.2g}")
    print(f"{'(upper bound) mean 1/2 |dF|^2 of the neighbour pairs':<58} "
          f"{estimate.mean_half_squared_difference:>16.4g}")
    print(f"{'(scale) mean square mapped force':<58} {float(np.mean(cg.forces ** 2)):>16.4g}")
    print()
    print(f"estimator: {estimate.n_pairs} pairs, median pair RMSD {estimate.median_pair_rmsd:.4f} nm, "
          f"{seconds_estimate:.1f} s; direct runs {seconds_direct:.0f} s; OpenMM {openmm.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
