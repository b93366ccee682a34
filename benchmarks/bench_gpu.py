"""Simulation steps per second of CGSchNet systems on a GPU: the plugin against openmm-torch and torch.

Systems (each with bonded priors and a short-range repulsion between non-bonded beads of a
molecule, built from standard OpenMM forces that never couple molecules):

* ``1x10``   one 10-bead chain,
* ``100x10`` 100 replicas of it in one Context (separate molecules of the learned force),
* ``1x1000`` one compact 1000-bead chain (a random walk confined to a sphere of protein density).

Implementations, each timed as Langevin integrator steps (2 fs) in one Context unless noted:

* ``plugin exact``: CGSchNetForce with exact filters; on CUDA/HIP once in each launch mode of the
  Common-Compute kernels (one launch with grid barriers, or one launch per stage);
* ``plugin tabulated``: the same with tabulated filters, where the plugin has that mode;
* ``TorchForce``: openmm-torch running the same model exported with ``CGSchNet.to_torchscript``,
  with CUDA graphs (``useCUDAGraphs``) where the model can be captured, else without;
* ``torch eager``: the torch model itself on the GPU, energy and autograd forces per evaluation
  (no integrator: evaluations per second);
* ``priors only``: the System without the learned force, OpenMM's own cost per step (the floor).

One table is printed: steps/s, time per step, replica-steps/s, the time per step relative to the
priors-only System and the speed relative to TorchForce.  Every entry runs in its own process with
a time limit, so a failure or a hang shows in the table instead of stopping the run; a missing
openmm-torch only removes its rows.  Developer settings of the Common-Compute kernels in
OPENMM_CGML_COMMON_TUNING (see CommonCGSchNetKernels.h) apply to every plugin row.

Usage::

    python benchmarks/bench_gpu.py                              # CUDA, full-size model
    python benchmarks/bench_gpu.py --platform OpenCL --small    # quick check without a GPU
"""

import argparse
import json
import os
import platform as host_platform
import subprocess
import sys
import tempfile
import time

import numpy as np

# Full-size model of the targets: 6 blocks, 128 features and filters, 50 RBFs, cutoff 1.2 nm.
FULL = dict(n_features=128, n_filters=128, n_rbf=50, n_interactions=6, cutoff=1.2, output_hidden=(64,))
SMALL = dict(n_features=32, n_filters=32, n_rbf=16, n_interactions=2, cutoff=1.2, output_hidden=(16,))
N_TYPES = 4
BOND_LENGTH = 0.38
BEAD_MASS = 110.0
# (label, molecules, beads per molecule, compact)
SYSTEMS = {"1x10": (1, 10, False), "100x10": (100, 10, False), "1x1000": (1, 1000, True)}
SMALL_SYSTEMS = {"1x10": (1, 10, False), "8x10": (8, 10, False), "1x100": (1, 100, True)}
SINGLE_LAUNCH = {"single launch": "singleLaunch=1", "per-stage launches": "singleLaunch=0"}


# ----------------------------------------------------------------------------------- systems

def random_chain(n_beads, rng, radius=None):
    """A self-avoiding random walk with bond length 0.38 nm, optionally kept inside a sphere."""
    chain = [np.zeros(3)]
    while len(chain) < n_beads:
        step = rng.normal(size=3)
        candidate = chain[-1] + BOND_LENGTH * step / np.linalg.norm(step)
        if radius is not None and np.linalg.norm(candidate) > radius:
            continue
        if len(chain) < 2 or np.min(np.linalg.norm(np.array(chain[:-1]) - candidate, axis=1)) > 0.4:
            chain.append(candidate)
        elif len(chain) > 3 and rng.uniform() < 0.01:
            chain = chain[:-3]  # back out of a dead end
    return np.array(chain)


def build_positions(n_molecules, per_molecule, compact, seed=0):
    rng = np.random.default_rng(seed)
    # Protein-like density for compact chains: about 8 beads per nm^3.
    radius = (3 * per_molecule / (4 * np.pi * 8.0)) ** (1 / 3) + 0.5 if compact else None
    one = random_chain(per_molecule, rng, radius)
    # Replicas on a cubic grid 4 nm apart: coordinates stay small enough for single precision.
    side = int(np.ceil(n_molecules ** (1 / 3)))
    offsets = [4.0 * np.array([k % side, (k // side) % side, k // side**2]) for k in range(n_molecules)]
    return np.concatenate([one + offset for offset in offsets])


def active_pairs(positions, n_molecules, per_molecule, cutoff):
    total = 0
    for k in range(n_molecules):
        x = positions[k * per_molecule:(k + 1) * per_molecule]
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        total += int((np.triu(d, 1)[np.triu_indices(per_molecule, 1)] < cutoff).sum())
    return total


def add_priors(system, n_molecules, per_molecule, repulsion_cutoff=1.2):
    """Harmonic bonds and angles, periodic torsions and a (0.4/r)^6 repulsion between beads three or
    more bonds apart, within each molecule only."""
    import openmm

    bonds, angles, torsions = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce(), openmm.PeriodicTorsionForce()
    for k in range(n_molecules):
        first = k * per_molecule
        for i in range(per_molecule - 1):
            bonds.addBond(first + i, first + i + 1, BOND_LENGTH, 20000.0)
        for i in range(per_molecule - 2):
            angles.addAngle(first + i, first + i + 1, first + i + 2, 1.9, 100.0)
        for i in range(per_molecule - 3):
            torsions.addTorsion(first + i, first + i + 1, first + i + 2, first + i + 3, 1, 0.5, 2.0)
            torsions.addTorsion(first + i, first + i + 1, first + i + 2, first + i + 3, 3, 0.0, 0.5)
    for force in (bonds, angles, torsions):
        system.addForce(force)
    if n_molecules == 1 and per_molecule > 100:
        repulsion = openmm.CustomNonbondedForce("4*(0.4/r)^6")
        repulsion.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
        repulsion.setCutoffDistance(repulsion_cutoff)
        for _ in range(per_molecule):
            repulsion.addParticle([])
        repulsion.createExclusionsFromBonds([(i, i + 1) for i in range(per_molecule - 1)], 2)
    else:
        repulsion = openmm.CustomBondForce("4*(0.4/r)^6")
        for k in range(n_molecules):
            first = k * per_molecule
            for i in range(per_molecule):
                for j in range(i + 3, per_molecule):
                    repulsion.addBond(first + i, first + j, [])
    system.addForce(repulsion)


def make_model(small, seed=0):
    import torch

    from openmmcgml.models import CGSchNet

    torch.manual_seed(seed)
    return CGSchNet(n_types=N_TYPES, **(SMALL if small else FULL)).float()


# ----------------------------------------------------------------------------------- one entry

def time_steps(context, integrator, min_time):
    """Integrator steps per second: after a warm-up, one timed run of about min_time seconds,
    ended by a state download (so the device has finished)."""
    integrator.step(10)
    context.getState(getEnergy=True)
    start = time.perf_counter()
    integrator.step(20)
    context.getState(getEnergy=True)
    rate = 20 / (time.perf_counter() - start)
    steps = max(20, min(int(rate * min_time), 1000000))
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    return steps / (time.perf_counter() - start)


def run_entry(spec):
    """Measure one (system, implementation); returns a dict with the rate or an error."""
    import openmm

    import openmmcgml  # noqa: F401  (loads the plugin)

    n_molecules, per_molecule, compact = spec["system"]
    positions = build_positions(n_molecules, per_molecule, compact)
    n = len(positions)
    types = [i % N_TYPES for i in range(per_molecule)] * n_molecules
    molecules = [k for k in range(n_molecules) for _ in range(per_molecule)]
    model = make_model(spec["small"])
    kind = spec["kind"]
    result = {}

    if kind == "eager":
        import torch

        from openmmcgml.models import CGTopology
        from openmmcgml.models.export import _TorchForceModule

        module = _TorchForceModule(model.to("cuda"), CGTopology(types, molecules), periodic=False)
        x = torch.tensor(positions, dtype=torch.float32, device="cuda")

        def evaluate():
            y = x.detach().requires_grad_(True)
            energy = module(y)
            (gradient,) = torch.autograd.grad(energy, y)
            return gradient

        for _ in range(3):
            evaluate()
        torch.cuda.synchronize()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < spec["min_time"]:
            for _ in range(10):
                evaluate()
            torch.cuda.synchronize()
            calls += 10
        result["rate"] = calls / (time.perf_counter() - start)
        return result

    system = openmm.System()
    for _ in range(n):
        system.addParticle(BEAD_MASS)
    add_priors(system, n_molecules, per_molecule)
    if kind == "plugin":
        force = model.to_force(types, molecules)
        if spec.get("table"):
            force.setFilterTabulationPoints(spec["table"])
        system.addForce(force)
    elif kind == "torchforce":
        from openmmtorch import TorchForce

        path = os.path.join(tempfile.mkdtemp(), "cgschnet.pt")
        model.to_torchscript(path, types, molecules)
        force = TorchForce(path)
        if spec.get("graphs"):
            force.setProperty("useCUDAGraphs", "true")
        system.addForce(force)
    integrator = openmm.LangevinMiddleIntegrator(300.0, 1.0, 0.002)
    properties = {"Precision": spec["precision"]} if spec["platform"] in ("CUDA", "OpenCL", "HIP") else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(spec["platform"]), properties)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300.0, 1)
    result["rate"] = time_steps(context, integrator, spec["min_time"])
    return result


def check_accuracy(spec):
    """Largest relative force error of the plugin (exact filters) against the float64 torch model."""
    import openmm
    import torch

    import openmmcgml  # noqa: F401

    n_molecules, per_molecule, compact = spec["system"]
    positions = build_positions(n_molecules, per_molecule, compact)
    types = [i % N_TYPES for i in range(per_molecule)] * n_molecules
    molecules = [k for k in range(n_molecules) for _ in range(per_molecule)]
    model = make_model(spec["small"])
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(BEAD_MASS)
    system.addForce(model.to_force(types, molecules))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(spec["platform"]),
                             {"Precision": spec["precision"]})
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    forces = state.getForces(asNumpy=True)._value
    energy = state.getPotentialEnergy()._value
    ref_energy, ref_forces = model.double().energy_and_forces(torch.tensor(positions, dtype=torch.float64), types, molecules)
    ref_forces = ref_forces.numpy()
    return {"energy_error": abs(energy - float(ref_energy)) / max(abs(float(ref_energy)), 1.0),
            "force_error": float(np.linalg.norm(forces - ref_forces) / np.linalg.norm(ref_forces))}


def measure(spec, timeout, tuning=None):
    """Run run_entry (or check_accuracy) in a child process with a time limit."""
    env = dict(os.environ)
    if tuning is not None:
        # Added to any developer settings already in the environment.
        base = os.environ.get("OPENMM_CGML_COMMON_TUNING", "")
        env["OPENMM_CGML_COMMON_TUNING"] = f"{base},{tuning}" if base else tuning
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if "WARNING" not in line]
    return {"error": lines[-1][:90] if lines else f"exit status {done.returncode}"}


# ----------------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default="CUDA")
    parser.add_argument("--precision", default="mixed")
    parser.add_argument("--small", action="store_true", help="a small model and small systems (a quick check without a GPU)")
    parser.add_argument("--systems", nargs="*", default=None)
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of timing per entry")
    parser.add_argument("--timeout", type=float, default=240.0, help="time limit per entry, in seconds")
    parser.add_argument("--tabulation-points", type=int, default=1000)
    parser.add_argument("--no-torch", action="store_true", help="leave out the TorchForce and torch eager rows")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        spec = json.loads(args.worker)
        result = check_accuracy(spec) if spec["kind"] == "check" else run_entry(spec)
        print("RESULT " + json.dumps(result), flush=True)
        return

    import openmm

    import openmmcgml
    from openmmcgml.forces import CGSchNetForce

    systems = SMALL_SYSTEMS if args.small else SYSTEMS
    names = args.systems or list(systems)
    status = openmmcgml.plugin_status()
    if not status["platforms"].get(args.platform):
        sys.exit(f"the plugin has no kernels on platform {args.platform}: {status}")
    has_table = hasattr(CGSchNetForce, "setFilterTabulationPoints") and args.tabulation_points > 0
    gpu = args.platform in ("CUDA", "HIP")
    try:
        import openmmtorch  # noqa: F401

        torchforce = not args.no_torch
        torchforce_note = "openmm-torch " + getattr(openmmtorch, "__version__", "")
    except Exception as error:  # any import failure (missing package, ABI mismatch) only drops its rows
        torchforce, torchforce_note = False, f"openmm-torch unavailable ({type(error).__name__}: {str(error)[:60]})"
    try:
        import torch

        eager = (not args.no_torch) and torch.cuda.is_available()
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device for torch"
        torch_note = f"torch {torch.__version__}"
    except Exception:
        eager, device, torch_note = False, "torch unavailable", "torch unavailable"

    model = make_model(args.small)
    print(f"# CGSchNet: {model.n_interactions} blocks, {model.n_features} features, {model.n_filters} filters, "
          f"{model.n_rbf} RBFs, cutoff {model.cutoff} nm; "
          f"platform {args.platform}, precision {args.precision}")
    print(f"# device: {device}; host {host_platform.machine()} with {os.cpu_count()} cores; OpenMM {openmm.version.full_version}; "
          f"{torch_note}; {torchforce_note}")
    if os.environ.get("OPENMM_CGML_COMMON_TUNING"):
        print(f"# OPENMM_CGML_COMMON_TUNING={os.environ['OPENMM_CGML_COMMON_TUNING']}")

    rows = []
    for name in names:
        n_molecules, per_molecule, compact = systems[name]
        positions = build_positions(n_molecules, per_molecule, compact)
        pairs = active_pairs(positions, n_molecules, per_molecule, model.cutoff)
        base = dict(system=[n_molecules, per_molecule, compact], small=args.small, platform=args.platform,
                    precision=args.precision, min_time=args.min_time)
        if n_molecules * per_molecule <= 1000:
            check = measure(dict(base, kind="check"), args.timeout)
            if "error" in check:
                print(f"# {name}: accuracy check failed: {check['error']}")
            else:
                print(f"# {name}: {pairs} pairs inside the cutoff; plugin vs torch float64: relative energy error "
                      f"{check['energy_error']:.1e}, relative force error {check['force_error']:.1e}")
        entries = []
        modes = list(SINGLE_LAUNCH.items()) if gpu else [("", None)]
        for mode, tuning in modes:
            label = "plugin exact" + (f", {mode}" if mode else "")
            entries.append((label, measure(dict(base, kind="plugin"), args.timeout, tuning)))
        if has_table:
            entries.append((f"plugin tabulated ({args.tabulation_points} points)",
                            measure(dict(base, kind="plugin", table=args.tabulation_points), args.timeout)))
        if torchforce:
            result = measure(dict(base, kind="torchforce", graphs=True), args.timeout)
            label = "TorchForce, CUDA graphs"
            if "error" in result:
                result = measure(dict(base, kind="torchforce", graphs=False), args.timeout)
                label = "TorchForce"
            entries.append((label, result))
        if eager:
            entries.append(("torch eager (evals/s)", measure(dict(base, kind="eager"), args.timeout)))
        entries.append(("priors only", measure(dict(base, kind="priors"), args.timeout)))
        rows.append((name, n_molecules, entries))

    header = (f"{'system':>7} {'implementation':<36} {'steps/s':>10} {'per step':>10} {'replica-steps/s':>16} "
              f"{'vs priors only':>15} {'vs TorchForce':>14}")
    print(header)
    print("-" * len(header))
    for name, n_molecules, entries in rows:
        rates = {label: result.get("rate") for label, result in entries}
        floor = rates.get("priors only")
        torch_rate = next((rate for label, rate in rates.items() if label.startswith("TorchForce")), None)
        for label, result in entries:
            if "error" in result:
                print(f"{name:>7} {label:<36} {'failed: ' + result['error']}")
                continue
            rate = result["rate"]
            per_step = 1.0 / rate
            step_text = f"{per_step * 1e6:.1f} us" if per_step < 1e-3 else f"{per_step * 1e3:.2f} ms"
            evaluations = label.startswith("torch eager")
            slowdown = f"{floor / rate:.2f}x" if floor and not evaluations else "-"
            speedup = f"{rate / torch_rate:.2f}x" if torch_rate else "-"
            print(f"{name:>7} {label:<36} {rate:>10.1f} {step_text:>10} {rate * n_molecules:>16.0f} {slowdown:>15} {speedup:>14}",
                  flush=True)


if __name__ == "__main__":
    main()
