"""Run the trained chignolin CA model that ships with the repository.

Loads ``examples/models/chignolin-ca.pt`` (a CGSchNet with bond, angle, dihedral and repulsion
priors, trained by docs/chignolin.md's commands), runs replicas of it in one OpenMM Context
started from the folded hairpin, and prints the CA RMSD to that hairpin, the fraction of native
contacts Q and the folded fraction over the run.

Run with ``python examples/chignolin_cg_model.py --replicas 10 --steps 10000`` (about half a
minute on 2 CPU cores).
"""

import argparse
import os

import numpy as np

from openmmcgml.analysis import NativeContacts, rmsd
from openmmcgml.cgmodel import CGModel
from openmmcgml.data.systems import builtin_system
from openmmcgml.simulation import CGSimulation

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "chignolin-ca.pt")


def folded_hairpin_ca():
    """CA positions (nm) of CLN025 built folded as in PDB 5AWL, without hydrogens or minimisation."""
    molecule = builtin_system("chignolin").build()
    ca = [atom.index for atom in molecule.topology.atoms() if atom.name == "CA"]
    return molecule.positions[ca]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10000, help="2 fs steps per replica")
    parser.add_argument("--report-interval", type=int, default=100)
    parser.add_argument("--platform", default=None, help="default: the CPU platform's kernel")
    parser.add_argument("--folded-rmsd", type=float, default=0.3, help="nm")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    model = CGModel.load(args.model)
    native = folded_hairpin_ca()
    model.check_beads(n_beads=len(native), source="the CLN025 hairpin")
    simulation = CGSimulation(model, args.replicas, platform=args.platform, seed=args.seed)
    simulation.set_positions(native)
    frames = []
    for _ in range(args.steps // args.report_interval):
        simulation.simulation.step(args.report_interval)
        frames.append(simulation.get_positions())
    frames = np.concatenate(frames)  # (reports x replicas, beads, 3)
    distance = rmsd(frames, native)
    q = NativeContacts().fit(native).transform(frames)
    print(f"{args.replicas} replicas x {args.steps} steps at {model.temperature:.0f} K on {simulation.platform_name}")
    print(f"CA RMSD to the hairpin: mean {10 * distance.mean():.2f} A, max {10 * distance.max():.2f} A")
    print(f"native contacts Q: mean {q.mean():.3f}")
    print(f"folded fraction (RMSD < {10 * args.folded_rmsd:.1f} A): {np.mean(distance < args.folded_rmsd):.3f}")
    return {"rmsd": distance, "q": q}


if __name__ == "__main__":
    main()
