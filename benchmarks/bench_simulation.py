"""Langevin steps per second of CG simulations with many replicas in one Context, per platform.

A CG model (a CGSchNet of a given size plus harmonic bond and angle priors, as
``openmmcgml.cgmodel.CGModel`` builds them) of alanine dipeptide (5 beads) and of a 10-bead CA
chain (chignolin-sized) runs in :class:`openmmcgml.simulation.CGSimulation` with 1 and 100
replicas on each platform.  The table gives steps per second of the whole Context and replica
steps per second (steps/s x replicas); all numbers of one table come from one run.

Usage::

    python benchmarks/bench_simulation.py
    python benchmarks/bench_simulation.py --replicas 1 10 100 --platforms Reference CPU --model small
"""

import argparse
import os
import platform as host_platform
import time

import numpy as np
import torch

import openmmcgml
from openmmcgml.analysis.geometry import build_chain
from openmmcgml.cgmodel import CGModel
from openmmcgml.platforms import chain_positions
from openmmcgml.models import CGSchNet
from openmmcgml.priors import HarmonicAngles, HarmonicBonds, PriorSet
from openmmcgml.simulation import CGSimulation

MODELS = {  # CGSchNet sizes: features = filters, RBFs, interaction blocks, cutoff (nm)
    "small": dict(n_features=64, n_filters=64, n_rbf=32, n_interactions=3, cutoff=1.2),
    "full": dict(n_features=128, n_filters=128, n_rbf=50, n_interactions=6, cutoff=1.2),
}


def alanine(size, seed=0):
    torch.manual_seed(seed)
    bonds = [0.133, 0.146, 0.152, 0.133]
    priors = PriorSet(5, terms=[HarmonicBonds([[i, i + 1] for i in range(4)], k=[2e5] * 4, r0=bonds),
                                HarmonicAngles([[i, i + 1, i + 2] for i in range(3)], k=[400.0] * 3,
                                               theta0=[1.95] * 3)])
    model = CGModel(CGSchNet(5, **MODELS[size]), priors, bead_types=list(range(5)),
                    bead_names=["C", "N", "CA", "C", "N"], masses=[12.011, 14.007, 12.011, 12.011, 14.007])
    return model, build_chain(bonds, [1.95] * 3, np.radians([-63.0, -42.0])), 0.001


def ca_chain(size, seed=0):
    torch.manual_seed(seed)
    priors = PriorSet(10, terms=[HarmonicBonds([[i, i + 1] for i in range(9)], k=[1e4] * 9, r0=[0.38] * 9)])
    model = CGModel(CGSchNet(7, **MODELS[size]), priors, bead_types=[i % 7 for i in range(10)],
                    bead_names=["CA"] * 10, masses=[110.0] * 10)
    return model, chain_positions(10, 1, seed=seed), 0.002


def measure(model, structure, timestep, n_replicas, platform, min_time):
    sim = CGSimulation(model, n_replicas, timestep=timestep, platform=platform, seed=1)
    sim.set_positions(structure)
    sim.run(10)  # warm-up (kernel set-up)
    done, steps, start = 0, 10, time.perf_counter()
    while time.perf_counter() - start < min_time:
        sim.run(sim.step_count + steps)
        done += steps
        steps *= 2
    elapsed = time.perf_counter() - start
    if not np.all(np.isfinite(sim.get_positions())):
        raise RuntimeError(f"non-finite positions on {platform}")
    return done / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    parser.add_argument("--model", choices=sorted(MODELS), nargs="+", default=["small", "full"])
    parser.add_argument("--systems", nargs="+", default=["alanine", "ca10"], choices=["alanine", "ca10"])
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of stepping per measurement")
    args = parser.parse_args(argv)
    builders = {"alanine": alanine, "ca10": ca_chain}
    print(f"openmm-cgml {openmmcgml.__version__}, OpenMM {openmmcgml.plugin_status()['openmm_version']}, "
          f"{host_platform.processor() or host_platform.machine()}, {os.cpu_count()} cores")
    print(f"{'system':<8} {'model':<6} {'replicas':>8} {'beads':>6} {'platform':<10} {'steps/s':>10} {'replica-steps/s':>16}")
    for system in args.systems:
        for size in args.model:
            model, structure, timestep = builders[system](size)
            for n_replicas in args.replicas:
                for platform in args.platforms:
                    rate = measure(model, structure, timestep, n_replicas, platform, args.min_time)
                    print(f"{system:<8} {size:<6} {n_replicas:>8} {n_replicas * model.n_beads:>6} {platform:<10} "
                          f"{rate:>10.1f} {rate * n_replicas:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
