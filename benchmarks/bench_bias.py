"""What a DiscriminatorBiasForce adds to the step time of a CG simulation, per platform.

The shipped chignolin model (examples/models/chignolin-ca.pt: CGSchNet and priors, 10 CA beads)
runs with 1 and 100 replicas in one Context, without and with a bias on every replica: all 45
CA-CA distances, 8 angles and 7 dihedrals (67 features), two networks of hidden widths [64, 64]
(random weights, clamp 3 kT).  The table gives steps per second of each (the best of three
interleaved measurements) and the bias's share of the step time, ``t_with / t_without - 1``; all
numbers of one table come from one run.

Usage::

    python benchmarks/bench_bias.py
    python benchmarks/bench_bias.py --replicas 1 100 --platforms CPU OpenCL --min-time 3
"""

import argparse
import itertools
import os
import platform as host_platform
import time

import numpy as np
import openmm
import torch
from openmm import unit

from openmmcgml.cgmodel import CGModel
from openmmcgml.models import BiasFeatures, Discriminator
from openmmcgml.platforms import chain_positions
from openmmcgml.simulation.system import build_system

MODEL = os.path.join(os.path.dirname(__file__), "..", "examples", "models", "chignolin-ca.pt")


def chignolin_bias(n_replicas, temperature, seed=0):
    torch.manual_seed(seed)
    features = BiasFeatures(distances=list(itertools.combinations(range(10), 2)),
                            angles=[[i, i + 1, i + 2] for i in range(8)],
                            dihedrals=[[i, i + 1, i + 2, i + 3] for i in range(7)])
    bias = Discriminator(features, hidden=[64, 64], clamp=3.0, temperature=temperature)
    bias.add_network([64, 64], "silu", 3.0)
    return bias.to_force(molecules=[list(range(10 * r, 10 * r + 10)) for r in range(n_replicas)])


def steps_per_second(system, positions, platform, min_time):
    integrator = openmm.LangevinMiddleIntegrator(340 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    properties = {"Precision": "single"} if platform in ("OpenCL", "CUDA", "HIP") else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    integrator.step(10)  # warm-up (kernel compilation, first evaluation)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        integrator.step(20)
        steps += 20
    context.getState(getEnergy=True)  # wait for a device to finish
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--platforms", nargs="+", default=["CPU", "OpenCL"])
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of steps per measurement")
    args = parser.parse_args()
    model = CGModel.load(MODEL)
    available = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    print(f"# {host_platform.processor() or host_platform.machine()}, {os.cpu_count()} cores, OpenMM "
          f"{openmm.__version__}; chignolin-ca.pt, bias of 67 features and two [64, 64] networks")
    print("| platform | replicas | steps/s without bias | steps/s with bias | bias share of the step |")
    print("|---|---:|---:|---:|---:|")
    for platform in args.platforms:
        if platform not in available:
            print(f"| {platform} | - | not available here | | |")
            continue
        for n in args.replicas:
            positions = np.asarray(chain_positions(10, n, seed=1)).reshape(-1, 3)
            plain = build_system(model, n)
            biased = build_system(model, n)
            biased.addForce(chignolin_bias(n, model.temperature))
            # interleaved, best of three each: a busy machine slows both alike
            without, with_bias = 0.0, 0.0
            for _ in range(3):
                without = max(without, steps_per_second(plain, positions, platform, args.min_time))
                with_bias = max(with_bias, steps_per_second(biased, positions, platform, args.min_time))
            print(f"| {platform} | {n} | {without:,.0f} | {with_bias:,.0f} | {without / with_bias - 1:+.1%} |", flush=True)


if __name__ == "__main__":
    main()
