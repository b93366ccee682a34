"""Mean torques on alanine dipeptide's phi and psi: data, histogram and (optionally) a model.

For a CG dataset of the 5 backbone beads (C N CA C N) the mapped forces are turned into generalized
forces along the chain's internal coordinates (:func:`openmmcgml.geometry.generalized_force_operator`)
and the torque on phi and on psi is averaged in bins of that angle. Two checks follow:

* **consistency of the force map**: if the mapped forces are mean forces, the binned mean torque
  equals ``-dF/dq`` of the free-energy profile ``F = -kT ln p`` of the same frames' histogram
  (the Jacobian of a chain's internal coordinates does not depend on its dihedrals); the table
  prints both;
* **a model's fit** (``--model``): the model's torques averaged over the same frames, bin by bin,
  show where it departs from the data's mean force and by how much, against the standard error of
  the data's mean.

Usage::

    python benchmarks/mean_force_profile.py data/learning-curve/train-s11-cg.h5 --stride 2 \\
        --model data/learning-curve/after/train-s11-cg-3ns/model.pt
"""

import argparse

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="CG HDF5 dataset of alanine dipeptide's 5 beads, with forces")
    parser.add_argument("--model", help="a CGModel file: print its mean torques on the same frames too")
    parser.add_argument("--stride", type=int, default=1, help="use every stride-th frame")
    parser.add_argument("--bins", type=int, default=36, help="bins over [-180, 180) degrees")
    parser.add_argument("--min-frames", type=int, default=300, help="print bins with at least this many frames")
    args = parser.parse_args(argv)

    from openmmcgml.analysis.geometry import alanine_phi_psi
    from openmmcgml.data import read_trajectory
    from openmmcgml.geometry import generalized_force_operator
    from openmmcgml.priors import BOLTZMANN, chain_bonds, chain_internal_coordinates

    data = read_trajectory(args.data, frames=slice(None, None, args.stride), resolution="coarse-grained")
    if data.n_particles != 5:
        raise SystemExit(f"{args.data} has {data.n_particles} beads; this diagnostic is for alanine's 5")
    kT = BOLTZMANN * float(data.metadata.temperature or 300.0)
    operator = generalized_force_operator(data.coordinates, *chain_internal_coordinates(5, chain_bonds(5))).numpy()
    torques = np.einsum("fij,fj->fi", operator, data.forces.reshape(data.n_frames, -1))[:, 7:9]
    model_torques = None
    if args.model:
        from openmmcgml.cgmodel import CGModel

        model = CGModel.load(args.model)
        forces = np.concatenate([model.energy_and_forces(data.coordinates[i:i + 5000])[1].numpy()
                                 for i in range(0, data.n_frames, 5000)])
        model_torques = np.einsum("fij,fj->fi", operator, forces.reshape(data.n_frames, -1))[:, 7:9]
    phi, psi = alanine_phi_psi(data.coordinates)
    edges = np.linspace(-np.pi, np.pi, args.bins + 1)
    width = edges[1] - edges[0]
    centres = np.degrees(0.5 * (edges[1:] + edges[:-1]))
    print(f"{data.n_frames} frames of {args.data}; torques in kJ/mol/rad")
    for k, (name, angle) in enumerate((("phi", phi), ("psi", psi))):
        index = np.clip(np.digitize(angle, edges) - 1, 0, args.bins - 1)
        counts = np.bincount(index, minlength=args.bins)
        safe = np.maximum(counts, 1)
        mean = np.bincount(index, weights=torques[:, k], minlength=args.bins) / safe
        spread = np.sqrt(np.maximum(np.bincount(index, weights=torques[:, k] ** 2, minlength=args.bins) / safe
                                    - mean ** 2, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            profile = -kT * np.log(counts / counts.sum() / width)
            # -dF/dq from the histogram by central differences on the periodic grid
            from_histogram = -(np.roll(profile, -1) - np.roll(profile, 1)) / (2 * width)
        header = f"{name:>6} {'frames':>8} {'data mean torque':>18} {'-dF/dq (histogram)':>19}"
        print(header + (f" {'model mean torque':>18} {'(model - data)/se':>18}" if model_torques is not None else ""))
        for b in range(args.bins):
            if counts[b] < args.min_frames:
                continue
            line = (f"{centres[b]:6.0f} {counts[b]:8d} {mean[b]:10.2f} +- {spread[b] / np.sqrt(counts[b]):4.2f} "
                    f"{from_histogram[b]:19.2f}")
            if model_torques is not None:
                model_mean = np.bincount(index, weights=model_torques[:, k], minlength=args.bins)[b] / counts[b]
                line += f" {model_mean:18.2f} {(model_mean - mean[b]) / (spread[b] / np.sqrt(counts[b])):18.1f}"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
