"""Energy conservation of a trained CG model in constant-energy (Verlet) runs, per platform.

The shipped chignolin CA model (``examples/models/chignolin-ca.pt``: a CGSchNet with bond, angle,
dihedral and repulsion priors) is built into an OpenMM System with
:func:`openmmcgml.simulation.build_system`, equilibrated with a Langevin run at the model's
temperature on the CPU platform (one run per seed), and then integrated at constant energy with
``openmm.VerletIntegrator`` from that frame (positions and velocities) on each platform and
precision.  Every run records the total energy ``E(t) = kinetic + potential`` and reports

- the drift: the slope of a least-squares line through ``E(t)``, in kJ/mol per ns per degree of
  freedom (DOF = 3 x particles - constraints - 3 if the System has a ``CMMotionRemover``; the CG
  System has neither, so 30 per chignolin replica);
- the RMS fluctuation: the RMS deviation of ``E(t)`` from that line, in kJ/mol per DOF, and the
  same as a fraction of the RMS fluctuation of the kinetic energy (which does not depend on the
  system's size).

Besides the platform/precision rows (Reference, CPU, OpenCL single and mixed by default) at one
time step, the table has a time-step scan on the CPU platform, the tabulated-filter mode
(``filter_tabulation_points``) on Reference and CPU, and the priors alone (OpenMM's own forces)
on every platform of the first rows as a baseline; ``--offset`` moves the starting frames away
from the origin, where float coordinates are coarser.  Each row gives the mean and range of the
drift over the seeds.  All figures of one table come from one run; docs/energy-conservation.md
has measured tables and what they show.

Usage::

    python benchmarks/energy_conservation.py                      # about 4 min on 2 cores
    python benchmarks/energy_conservation.py --platforms CPU OpenCL:single --timesteps --offset 16
    python benchmarks/energy_conservation.py --platforms CUDA:single CUDA:mixed --time 100
"""

import argparse
import os
import platform as host_platform
import runpy
import time

import numpy as np
import openmm
from openmm import unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "chignolin_cg_model.py")

#: What each setting integrates in and computes the learned force in (OpenMM 8.6, this plugin).
#: The CPU platform has no Precision property: it integrates with the Reference platform's
#: (double-precision) Verlet kernel, and the plugin's CPU kernel computes the learned force in float.
PRECISION = {
    ("Reference", None): "double",
    ("CPU", None): "float force, double integration",
    ("OpenCL", "single"): "single",
    ("OpenCL", "mixed"): "float force, double integration",
    ("OpenCL", "double"): "double",
    ("CUDA", "single"): "single",
    ("CUDA", "mixed"): "float force, double integration",
    ("CUDA", "double"): "double",
}


def load_chignolin(model_path=None):
    """The shipped chignolin CA model and its folded CA hairpin (nm), as the example script has them."""
    from openmmcgml.cgmodel import CGModel

    example = runpy.run_path(EXAMPLE, run_name="energy_conservation")
    model = CGModel.load(model_path or example["MODEL"])
    return model, example["folded_hairpin_ca"]()


class _Variant:
    """The CGModel interface :func:`build_system` reads, with the learned force's options changed."""

    def __init__(self, model, filter_tabulation_points=0, priors_only=False):
        self.model, self.points, self.priors_only = model, int(filter_tabulation_points), priors_only
        self.masses = model.masses

    def prior_forces(self, n_replicas=1):
        return self.model.prior_forces(n_replicas)

    def learned_force(self, n_replicas=1):
        if self.priors_only:
            return None
        return self.model.learned_force(n_replicas, filter_tabulation_points=self.points)


def cg_system(model, n_replicas=1, filter_tabulation_points=0, priors_only=False):
    """The CG System of ``n_replicas`` copies: priors in group 0, the learned force in group 1."""
    from openmmcgml.simulation import build_system

    return build_system(_Variant(model, filter_tabulation_points, priors_only), n_replicas)


def degrees_of_freedom(system):
    """3 x particles - constraints - 3 when a CMMotionRemover removes the centre-of-mass motion."""
    n_dof = 3 * system.getNumParticles() - system.getNumConstraints()
    if any(isinstance(system.getForce(i), openmm.CMMotionRemover) for i in range(system.getNumForces())):
        n_dof -= 3
    return n_dof


def equilibrated_state(model, structure, n_replicas=1, seed=1, time_ps=20.0, timestep=0.002, friction=1.0):
    """Positions and velocities (nm, nm/ps) after a Langevin run at the model's temperature.

    Uses :class:`openmmcgml.simulation.CGSimulation` on the CPU platform; the seed sets the
    initial velocities and the Langevin noise, so each seed gives a different starting frame.
    """
    from openmmcgml.simulation import CGSimulation

    simulation = CGSimulation(model, n_replicas, timestep=timestep, friction=friction, platform="CPU", seed=seed)
    simulation.set_positions(structure)
    simulation.simulation.step(int(round(time_ps / timestep)))
    state = simulation.context.getState(getPositions=True, getVelocities=True)
    return (state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
            state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond))


def verlet_run(system, positions, velocities, platform, precision=None, timestep=0.002, time_ps=20.0,
               sample_ps=0.04, energy_groups=None):
    """Integrate at constant energy and record the energies.

    Parameters
    ----------
    system : openmm.System
    positions, velocities : array_like
        The starting frame (nm, nm/ps).
    platform : str
    precision : str, optional
        The platform's ``Precision`` property (OpenCL, CUDA, HIP); None for Reference and CPU.
    timestep, time_ps, sample_ps : float
        Time step, run length and the interval between energy samples, in ps.
    energy_groups : set of int, optional
        Force groups whose energy counts (default all).  The integrator always uses every force.

    Returns
    -------
    dict
        ``time`` (ps), ``total`` and ``kinetic`` (kJ/mol) per sample, ``steps``, ``seconds``
        (wall time of the run) and ``stable`` (False when an energy became non-finite or the
        platform raised).
    """
    integrator = openmm.VerletIntegrator(timestep)
    properties = {"Precision": precision} if precision else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    context.setVelocities(velocities)
    interval = max(1, int(round(sample_ps / timestep)))
    n_samples = max(2, int(round(time_ps / (interval * timestep))))
    groups = -1 if energy_groups is None else set(energy_groups)
    times, total, kinetic = [], [], []
    stable, start = True, time.perf_counter()
    try:
        for k in range(n_samples + 1):
            state = context.getState(getEnergy=True, groups=groups)
            ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
            pe = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            if not np.isfinite(ke + pe):
                stable = False
                break
            times.append(k * interval * timestep)
            total.append(ke + pe)
            kinetic.append(ke)
            if k < n_samples:
                integrator.step(interval)
    except openmm.OpenMMException:
        stable = False
    seconds = time.perf_counter() - start
    del context, integrator
    return {"time": np.array(times), "total": np.array(total), "kinetic": np.array(kinetic),
            "steps": n_samples * interval, "seconds": seconds, "stable": stable}


def drift_figures(run, n_dof):
    """Drift (kJ/mol/ns/DOF), RMS fluctuation about the fitted line (kJ/mol/DOF) and its ratio to RMS(KE).

    An unstable run gives inf for all three.
    """
    if not run["stable"] or len(run["time"]) < 3:
        return {"drift": np.inf, "rms": np.inf, "rms_ratio": np.inf}
    t_ns = run["time"] * 1e-3
    slope, intercept = np.polyfit(t_ns, run["total"], 1)
    residual = run["total"] - (slope * t_ns + intercept)
    rms = float(np.sqrt(np.mean(residual ** 2)))
    return {"drift": float(slope) / n_dof, "rms": rms / n_dof, "rms_ratio": rms / float(np.std(run["kinetic"]))}


def parse_setting(text):
    """``"OpenCL:mixed"`` -> ``("OpenCL", "mixed")``; ``"CPU"`` -> ``("CPU", None)``."""
    platform, _, precision = text.partition(":")
    return platform, precision or None


def available_platforms():
    return {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}


def table_rows(args):
    """(group, platform, precision, timestep ps, tabulation points, priors only) of every table row."""
    have = available_platforms()
    settings = [parse_setting(text) for text in args.platforms]
    missing = sorted({platform for platform, _ in settings} - have)
    if missing:
        print(f"skipped (no such OpenMM platform here): {', '.join(missing)}")
    settings = [s for s in settings if s[0] in have]
    rows = [("platforms", platform, precision, args.timestep, 0, False) for platform, precision in settings]
    rows += [("time step", "CPU", None, step * 1e-3, 0, False) for step in args.timesteps]
    if args.tabulation:
        rows += [("tabulated", platform, None, args.timestep, args.tabulation, False)
                 for platform in ("Reference", "CPU")]
    if args.priors_only:
        rows += [("priors only", platform, precision, args.timestep, 0, True) for platform, precision in settings]
    return rows


def markdown_table(header, lines):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    out = ["| " + " | ".join(f"{cell:<{w}}" for cell, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(f"{cell:<{w}}" for cell, w in zip(line, widths)) + " |" for line in lines]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: examples/models/chignolin-ca.pt")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--time", type=float, default=20.0, help="ps of constant-energy run per row and seed")
    parser.add_argument("--timestep", type=float, default=2.0, help="fs, of the platform rows")
    parser.add_argument("--platforms", nargs="*", default=["Reference", "CPU", "OpenCL:single", "OpenCL:mixed"],
                        help="PLATFORM[:PRECISION] of the platform rows")
    parser.add_argument("--timesteps", type=float, nargs="*", default=[1.0, 4.0, 8.0, 12.0, 16.0],
                        help="fs, the CPU platform's time-step scan")
    parser.add_argument("--tabulation", type=int, default=1000, help="filter table points (0: no such rows)")
    parser.add_argument("--no-priors-only", dest="priors_only", action="store_false",
                        help="leave out the rows of the priors alone (OpenMM's own forces)")
    parser.add_argument("--equilibration", type=float, default=20.0, help="ps of Langevin run per seed")
    parser.add_argument("--offset", type=float, default=0.0,
                        help="nm added to every coordinate of the starting frame (the physics is the same; "
                             "float positions are coarser far from the origin)")
    args = parser.parse_args(argv)
    args.timestep *= 1e-3

    started = time.perf_counter()
    model, hairpin = load_chignolin(args.model)
    rows = table_rows(args)
    systems, results, n_dof = {}, {row: [] for row in rows}, {}
    for seed in args.seeds:
        positions, velocities = equilibrated_state(model, hairpin, args.replicas, seed, args.equilibration)
        positions = positions + args.offset
        for row in rows:
            _, platform, precision, step, points, priors_only = row
            key = (points, priors_only)
            if key not in systems:
                systems[key] = cg_system(model, args.replicas, points, priors_only)
                n_dof[key] = degrees_of_freedom(systems[key])
            run = verlet_run(systems[key], positions, velocities, platform, precision, step, args.time)
            results[row].append({**drift_figures(run, n_dof[key]), "steps_per_second": run["steps"] / run["seconds"]})

    lines = []
    for row in rows:
        group, platform, precision, step, points, priors_only = row
        figures = results[row]
        drifts = np.array([f["drift"] for f in figures])
        what = PRECISION.get((platform, precision), precision or "")
        if priors_only and platform == "CPU":
            what = "OpenMM's CPU kernels, double integration"
        if points:
            what += f", {points}-point filter table"
        if np.all(np.isfinite(drifts)):
            drift = f"{drifts.mean():+.1e} [{drifts.min():+.1e}, {drifts.max():+.1e}]"
            rms = f"{np.mean([f['rms'] for f in figures]):.1e}"
            ratio = f"{np.mean([f['rms_ratio'] for f in figures]):.4f}"
        else:
            drift, rms, ratio = f"unstable in {np.sum(~np.isfinite(drifts))} of {len(drifts)} runs", "-", "-"
        speed = np.mean([f["steps_per_second"] for f in figures])
        lines.append([group, platform, precision or "-", what, f"{step * 1000:g}", f"{args.time * 1e-3:g}",
                      drift, rms, ratio, f"{speed:.0f}"])
    dof = sorted(set(n_dof.values()))
    print(f"{model.n_beads}-bead chignolin CA model x {args.replicas} replica(s) = {', '.join(map(str, dof))} DOF, "
          f"{model.temperature:g} K; seeds {' '.join(map(str, args.seeds))}: {args.equilibration:g} ps Langevin "
          f"(CPU, 2 fs, 1/ps), then {args.time:g} ps of Verlet per row and seed"
          + (f", started {args.offset:g} nm from the origin along x, y and z" if args.offset else ""))
    print(f"OpenMM {openmm.__version__}, {host_platform.machine()}, {os.cpu_count()} CPU cores; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(markdown_table(["rows", "platform", "Precision", "computes in", "dt (fs)", "ns per seed",
                          "drift kJ/mol/ns/DOF: mean [min, max]", "RMS kJ/mol/DOF", "RMS/RMS(KE)", "steps/s"],
                         lines))
    return results


if __name__ == "__main__":
    main()
