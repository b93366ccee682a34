"""Speed of the all-atom oracle: frames/s and ns/day of `run_oracle` per system and platform.

Each row is one complete oracle run in a temporary folder (build, hydrogens, minimisation, then
the timed MD loop that saves coordinates and forces every `--save-every` steps, maps them to CG on
the fly and checkpoints every `--flush-every` frames). The timing covers the MD loop with all its
I/O; set-up is reported separately. All rows of a table come from one run on one machine.

Usage::

    python benchmarks/bench_oracle.py                                   # both systems, Reference and CPU
    python benchmarks/bench_oracle.py --systems chignolin --platforms CPU --steps 20000
"""

import argparse
import os
import platform as host_platform
import tempfile
import time

import numpy as np
import openmm

from openmmcgml.data import OracleConfig, TrajectoryFile, resolve_platform, run_oracle

DEFAULT_STEPS = {"alanine-dipeptide": 50000, "chignolin": 10000}


def raw_steps_per_second(path, platform, threads, steps, chunk):
    """Steps/s of the same System and platform with nothing saved (integrator.step in chunks)."""
    with TrajectoryFile(path) as handle:
        system = openmm.XmlSerializer.deserialize(handle.system_xml)
        positions = np.asarray(handle.dataset("coordinates")[-1], dtype=np.float64)
        temperature, timestep = handle.metadata.temperature, handle.metadata.timestep
    chosen = resolve_platform(platform, system.getNumParticles())
    properties = {"Threads": str(threads)} if threads and chosen.getName() == "CPU" else {}
    integrator = openmm.LangevinMiddleIntegrator(temperature, 1.0, timestep)
    context = openmm.Context(system, integrator, chosen, properties)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature, 1)
    integrator.step(chunk)
    began = time.perf_counter()
    for _ in range(steps // chunk):
        integrator.step(chunk)
    return (steps // chunk) * chunk / (time.perf_counter() - began)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="*", default=list(DEFAULT_STEPS))
    parser.add_argument("--platforms", nargs="*", default=["Reference", "CPU"])
    parser.add_argument("--steps", type=int, default=None, help="production steps per row (default: 50,000 alanine, 10,000 chignolin)")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--flush-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="CPU platform threads (default: OpenMM's choice)")
    args = parser.parse_args(argv)

    print(f"# oracle speed on {host_platform.node()} ({os.cpu_count()} cores), OpenMM {openmm.__version__}, "
          f"amber99sbildn + OBC, 2 fs, HBonds, a frame (AA + CG) every {args.save_every} steps")
    print("| system | atoms | platform | steps | set-up s | frames/s | steps/s | ns/day | MD alone, steps/s | oracle / MD alone |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for system in args.systems:
        for platform in args.platforms:
            steps = args.steps or DEFAULT_STEPS[system]
            steps -= steps % args.save_every
            with tempfile.TemporaryDirectory() as folder:
                config = OracleConfig(system=system, output=os.path.join(folder, "aa.h5"), cg_output=os.path.join(folder, "cg.h5"),
                                      n_steps=steps, save_every=args.save_every, flush_every=args.flush_every,
                                      platform=platform, threads=args.threads)
                began = time.perf_counter()
                result = run_oracle(config)
                setup = time.perf_counter() - began - result.seconds
                raw = raw_steps_per_second(result.output, platform, args.threads, steps, args.save_every)
            rate = result.steps / result.seconds
            print(f"| {system} | {result.n_atoms} | {result.platform} | {steps} | {setup:.1f} | {result.frames_per_second:.1f} | "
                  f"{rate:.0f} | {result.ns_per_day:.0f} | {raw:.0f} | {rate / raw:.2f} |", flush=True)


if __name__ == "__main__":
    main()
