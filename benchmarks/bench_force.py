"""Energy+force evaluations per second: CGSchNetForce on each platform vs torch on the CPU.

For each system size the same model is evaluated by

* the plugin on every platform that has its kernels (Context.getState with energy and forces,
  after a position update so nothing is cached), with exact and with tabulated filters
  (``setFilterTabulationPoints``), and
* the PyTorch model's forward + backward (autograd forces) on the CPU, in float32 and float64,

and one table with evaluations per second and the ratios to torch float32 and to the plugin's
Reference platform (exact filters) is printed. All numbers of a table are measured in one run on
one machine.

Usage::

    python benchmarks/bench_force.py                      # 10, 100 and 1000 beads, full-size model
    python benchmarks/bench_force.py --sizes 10 --min-time 0.5 --platforms Reference CPU
    python benchmarks/bench_force.py --tabulation-points 0   # exact filters only
"""

import argparse
import os
import platform as host_platform
import time

import numpy as np
import openmm
import torch

import openmmcgml
try:
    from openmmcgml.platforms import chain_positions
except ImportError:  # the module's earlier name
    from openmmcgml.demo import chain_positions
from openmmcgml.models import CGSchNet

# (label, molecules, beads per molecule)
SIZES = {10: (1, 10), 100: (1, 100), 1000: (100, 10)}


def build(n_molecules, per_molecule, seed=0):
    positions = chain_positions(per_molecule, n_molecules, seed=seed)
    types = [i % 4 for i in range(per_molecule)] * n_molecules
    molecules = [m for m in range(n_molecules) for _ in range(per_molecule)]
    return positions, types, molecules


#: Timing windows per entry (set by --repeats); the best window is reported, which keeps
#: transient load from other processes on a shared machine out of the figures.
REPEATS = 1


def time_call(function, min_time, max_calls=10000):
    """Calls per second of `function`: the best of REPEATS windows of min_time, after a warm-up call."""
    function()
    best = 0.0
    for _ in range(REPEATS):
        calls, start = 0, time.perf_counter()
        while True:
            function()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time or calls >= max_calls:
                break
        best = max(best, calls / elapsed)
    return best


def bench_plugin(model, positions, types, molecules, platform_name, properties, min_time, tabulation_points=0):
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(100.0)
    system.addForce(model.to_force(types, molecules, filter_tabulation_points=tabulation_points))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform_name), properties)
    shifted = [positions, positions + 1e-4]
    counter = [0]

    def evaluate():
        counter[0] += 1
        context.setPositions(shifted[counter[0] % 2])
        context.getState(getEnergy=True, getForces=True)

    return time_call(evaluate, min_time)


def bench_torch(model, positions, types, molecules, dtype, min_time):
    model = model.to(dtype)
    from openmmcgml.models import CGTopology

    topology = CGTopology(types, molecules)
    x = torch.tensor(positions, dtype=dtype)

    def evaluate():
        model.energy_and_forces(x, topology)

    return time_call(evaluate, min_time)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=sorted(SIZES), choices=sorted(SIZES))
    parser.add_argument("--platforms", nargs="*", default=None, help="default: every platform with the plugin's kernels")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of each timing window")
    parser.add_argument("--repeats", type=int, default=3, help="timing windows per entry; the best is reported")
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--rbf", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--cutoff", type=float, default=1.2)
    parser.add_argument("--tabulation-points", type=int, default=1000,
                        help="grid points of the tabulated-filter rows (0: exact filters only)")
    parser.add_argument("--tabulated-platforms", nargs="*", default=None,
                        help="platforms also benchmarked with tabulated filters (default: all of them)")
    parser.add_argument("--threads", type=int, default=None, help="Threads property of the CPU platform (default: all cores)")
    args = parser.parse_args(argv)
    global REPEATS
    REPEATS = max(1, args.repeats)

    torch.manual_seed(0)
    model = CGSchNet(n_types=4, n_features=args.features, n_filters=args.features, n_rbf=args.rbf,
                     n_interactions=args.blocks, cutoff=args.cutoff)
    status = openmmcgml.plugin_status()
    platforms = args.platforms or [name for name, ok in status["platforms"].items() if ok]
    cases = []
    for name in platforms:
        if name in ("OpenCL", "CUDA", "HIP"):
            variants = [{"Precision": "single"}, {"Precision": "mixed"}]
        elif name == "CPU" and args.threads:
            variants = [{"Threads": str(args.threads)}]
        else:
            variants = [{}]
        for properties in variants:
            cases.append((name, properties, 0))
            if args.tabulation_points > 0 and (args.tabulated_platforms is None or name in args.tabulated_platforms):
                cases.append((name, properties, args.tabulation_points))

    print(f"# CGSchNet: {args.blocks} blocks, {args.features} features/filters, {args.rbf} RBFs, cutoff {args.cutoff} nm")
    print(f"# host: {host_platform.processor() or host_platform.machine()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; OpenMM {status['openmm_version']}")
    print(f"# each entry: best of {REPEATS} timing windows of {args.min_time} s after a warm-up call")
    if args.tabulation_points > 0:
        error = model.double().filter_tabulation_error(args.tabulation_points)
        model = model.float()
        print(f"# tabulated rows: {args.tabulation_points} points; largest filter error |W - W_table| = "
              f"{error['max_error']:.2e} (largest |W| {error['max_filter']:.2f}), "
              f"|dW/dr - dW_table/dr| = {error['max_derivative_error']:.2e} /nm (largest {error['max_filter_derivative']:.2f})")
    header = f"{'beads':>6} {'implementation':<30} {'evals/s':>12} {'vs torch f32':>13} {'vs Reference':>13}"
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        n_molecules, per_molecule = SIZES[size]
        positions, types, molecules = build(n_molecules, per_molecule)
        rows = [("torch CPU float32", bench_torch(model, positions, types, molecules, torch.float32, args.min_time)),
                ("torch CPU float64", bench_torch(model, positions, types, molecules, torch.float64, args.min_time))]
        model = model.float()
        reference = None
        for name, properties, points in cases:
            label = " ".join([name] + list(properties.values()) + ([f"tabulated {points}"] if points else []))
            rate = bench_plugin(model, positions, types, molecules, name, properties, args.min_time, points)
            if name == "Reference" and points == 0:
                reference = rate
            rows.append((f"plugin {label}", rate))
        baseline = rows[0][1]
        layout = f"{n_molecules}x{per_molecule}" if n_molecules > 1 else str(size)
        for label, rate in rows:
            versus_reference = f"{rate / reference:>12.2f}x" if reference else f"{'-':>13}"
            print(f"{layout:>6} {label:<30} {rate:>12.1f} {rate / baseline:>12.2f}x {versus_reference}", flush=True)


if __name__ == "__main__":
    main()
