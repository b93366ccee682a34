"""The noise floor: independent all-atom sets scored against the long reference.

Scores each CG-mapped all-atom set (same size as a training set, a different oracle seed each)
against the long reference with :func:`openmmcgml.analysis.noise_floor` and prints the mean,
the sample standard deviation (ddof 1) and the range over sets of the headline metrics; with
``--output`` everything (every metric of every set) goes to a JSON file.

Usage::

    cgml oracle examples/configs/oracle-alanine-long-reference.yaml
    for seed in 11 12 13; do
        cgml oracle examples/configs/oracle-alanine.yaml --set seed=$seed \\
            --set output=data/floor/aa-$seed.h5 --set cg_output=data/floor/cg-$seed.h5
    done
    python benchmarks/noise_floor.py data/alanine-dipeptide/long-reference-cg.h5 data/floor/cg-1{1,2,3}.h5 \\
        --output data/floor/noise-floor.json
"""

import argparse
import json

from openmmcgml._atomic import atomic_write
from openmmcgml.analysis import noise_floor

HEADLINE = ("phi_psi_js", "phi_js", "psi_js", "tica_w1_2d", "tica_w1_1d_mean", "model_population_alpha_R",
            "model_population_beta", "model_population_alpha_L", "model_dF_alpha_R_kT", "model_dF_alpha_L_kT",
            "model_dF_max_deviation_kT")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", help="the long CG-mapped reference (several files: comma-separated)")
    parser.add_argument("sets", nargs="+", help="CG-mapped all-atom sets of one size, one per oracle seed")
    parser.add_argument("--lagtime", type=int, default=20, help="TICA lag in reference frames")
    parser.add_argument("--basin-blocks", type=int, default=None, help="blocks in time per run for basin errors")
    parser.add_argument("--output", help="JSON file for the summary and every set's metrics")
    args = parser.parse_args(argv)
    reference = args.reference.split(",") if "," in args.reference else args.reference
    floor = noise_floor(reference, args.sets, lagtime=args.lagtime, basin_blocks=args.basin_blocks)
    print(f"{floor['n_sets']} sets against {args.reference} (the 'model' of each row is an all-atom set)")
    print(f"{'metric':<28}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}")
    for key in HEADLINE:
        if key in floor["mean"]:
            print(f"{key:<28}" + "".join(f"{floor[s][key]:>10.4f}" for s in ("mean", "std", "min", "max")))
    if args.output:
        with atomic_write(args.output, "w") as handle:
            json.dump({"reference": args.reference, "sets": args.sets, **floor}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
