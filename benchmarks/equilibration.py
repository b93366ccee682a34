"""Is CG sampling equilibrated? Replicas of a trained alanine-dipeptide model started only from beta
frames and only from alpha-R frames, compared over growing windows of simulated time.

Both sets run with ``cgml simulate``'s settings (``initial.basin: beta`` and ``alpha_R``, frames of
the training set) and are compared with :func:`openmmcgml.analysis.equilibration.compare_starts`:
for each window ``(burn-in, T]`` the 2-D phi/psi JS distance between the sets, the basin
populations of each with their standard errors, and the first ``T`` from which they agree: the JS
distance within the tolerance (by default the demo's all-atom noise floor, read from its
``summary.json``, each JS distance taken on as many frames as that floor's samples hold) and every
population within 2 standard errors of the difference (``--population-sigmas``).  The runs keep
checkpoints: running the script again with a larger ``--ns`` continues them.

Usage::

    cgml demo -o cgml-demo                       # a trained model and its noise floor
    python benchmarks/equilibration.py --demo cgml-demo --ns 1 --replicas 40
    python benchmarks/equilibration.py --model M.pt --starts cg.h5 --tolerance 0.08 --ns 2
"""

import argparse
import json
import os
import platform as host_platform
import time

from openmmcgml.analysis.equilibration import compare_starts
from openmmcgml.configs.simulate import run_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", default="cgml-demo", help="a cgml demo folder: its trained model, training set "
                        "and noise floor (default ./cgml-demo)")
    parser.add_argument("--model", help="a CGModel file (default: the demo's models/trained.pt)")
    parser.add_argument("--starts", help="CG frames to start from (default: the demo's training set)")
    parser.add_argument("--output", default="equilibration", help="folder of the runs and the result")
    parser.add_argument("--replicas", type=int, default=40, help="replicas per start (default 40)")
    parser.add_argument("--ns", type=float, default=1.0, help="simulated time per replica, ns (default 1)")
    parser.add_argument("--timestep", type=float, default=0.002, help="ps (default 0.002)")
    parser.add_argument("--report-interval", type=int, default=50, help="steps between frames (default 50)")
    parser.add_argument("--burn-in", type=float, default=0.0, help="ps dropped from every replica (default 0)")
    parser.add_argument("--windows", type=int, default=10, help="number of growing windows (default 10)")
    parser.add_argument("--tolerance", type=float, help="largest 2-D phi/psi JS distance that counts as "
                        "agreement (default: the demo's noise floor)")
    parser.add_argument("--max-frames", type=int, help="frames per set behind each JS distance, evenly "
                        "strided, to match the size of the noise floor's samples (default: the demo's)")
    parser.add_argument("--population-tolerance", type=float, help="largest basin-population difference that "
                        "counts as agreement (default: not used)")
    parser.add_argument("--population-sigmas", type=float, default=2.0, help="largest basin-population "
                        "difference, in standard errors (from the independent replicas), that counts as agreement "
                        "(default 2; 0: not used)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--platform", default="auto")
    parser.add_argument("--threads", type=int, help="CPU platform threads (default: OpenMM's choice)")
    args = parser.parse_args(argv)

    summary_path = os.path.join(args.demo, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    files = summary.get("files", {})
    model = args.model or files.get("model") or os.path.join(args.demo, "models", "trained.pt")
    starts = args.starts or files.get("training_cg") or os.path.join(args.demo, "data", "training-cg.h5")
    tolerance = args.tolerance
    if tolerance is None:
        floor = summary.get("metrics", {}).get("noise_floor", {}).get("phi_psi_js")
        if floor is None:
            parser.error(f"no noise floor in {summary_path}: give --tolerance")
        tolerance = float(floor)
    max_frames = args.max_frames
    if max_frames is None and args.tolerance is None:
        max_frames = summary.get("metrics", {}).get("noise_floor", {}).get("n_model_frames")
    steps = int(round(args.ns * 1000.0 / args.timestep))
    os.makedirs(args.output, exist_ok=True)

    outputs, seconds = {}, {}
    for basin in ("beta", "alpha_R"):
        outputs[basin] = os.path.join(args.output, f"{basin}.h5")
        settings = {"model": model, "replicas": args.replicas, "steps": steps, "timestep": args.timestep,
                    "report_interval": args.report_interval, "initial": {"reference": starts, "basin": basin},
                    "output": outputs[basin], "checkpoint_interval": max(args.report_interval, steps // 10),
                    "seed": args.seed + (0 if basin == "beta" else 1000), "platform": args.platform,
                    "platform_properties": {"Threads": args.threads} if args.threads else {}}
        print(f"start {basin}:", flush=True)
        started = time.perf_counter()
        run_config(settings, print_fn=lambda text: print("  " + text, flush=True))
        seconds[basin] = time.perf_counter() - started

    check = compare_starts(outputs["beta"], outputs["alpha_R"], burn_in=args.burn_in, windows=args.windows,
                           tolerance=tolerance, max_frames=max_frames, population_tolerance=args.population_tolerance,
                           population_sigmas=args.population_sigmas or None, labels=("beta", "alpha_R"))
    print(f"\nmodel {model}; starts from {starts}; {args.replicas} replicas x {args.ns:g} ns per start; "
          f"tolerance: 2-D JS <= {tolerance:.3f}; {host_platform.node()} ({os.cpu_count()} CPUs), "
          f"{time.strftime('%Y-%m-%d')}")
    print(check.table())
    result = dict(check.to_dict(), model=model, starts=starts, replicas=args.replicas, ns=args.ns,
                  seconds=seconds, date=time.strftime("%Y-%m-%d %H:%M"))
    with open(os.path.join(args.output, "equilibration.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    return check


if __name__ == "__main__":
    main()
