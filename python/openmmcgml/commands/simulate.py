"""``cgml simulate``: run a trained CG model, many replicas in one OpenMM Context."""

import os

#: Every setting of a simulate config, with its default (examples/configs/simulate-alanine.yaml).
DEFAULTS = {
    "model": None,               # path of a CGModel saved with CGModel.save()
    "replicas": 1,
    "steps": 10000,              # total steps; a run resumed from its checkpoint continues to this
    "report_interval": 100,      # steps between saved frames
    "timestep": 0.002,           # ps
    "friction": 1.0,             # 1/ps
    "temperature": None,         # K; None: the model's
    "platform": "auto",          # "auto": CPU (its kernel) with a learned force; priors alone: Reference below 1000 beads
    "platform_properties": {},
    "seed": 1,
    "initial": {},               # {"reference": h5 file} (random frames) or {"structure": .npy/.pdb/...}
    "spacing": None,             # nm between replica copies (viewing only); None: automatic
    "minimize": False,
    "output": "trajectory.h5",
    "forces": False,
    "checkpoint": None,          # default: the output path with .chk
    "checkpoint_interval": None,
    "resume": True,
    "overwrite": False,
    "progress": True,
}


def _rules():
    from .._config import boolean, integer, mapping, number, openmm_platform, text

    return {
        "model": text(), "replicas": integer(1), "steps": integer(1), "report_interval": integer(1),
        "timestep": number(above=0), "friction": number(0), "temperature": number(above=0, optional=True),
        "platform": openmm_platform(), "platform_properties": mapping(), "seed": integer(optional=True),
        "initial": mapping(), "spacing": number(above=0, optional=True), "minimize": boolean(),
        "output": text(), "forces": boolean(), "checkpoint": text(), "checkpoint_interval": integer(1, optional=True),
        "resume": boolean(), "overwrite": boolean(), "progress": boolean(),
    }


#: The type and range of every setting (checked by load_config and run_config; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    from .._config import add_config_arguments

    parser = subparsers.add_parser(
        "simulate",
        help="run Langevin dynamics of a trained CG model (replicas in one Context)",
        description="Build the CG System (bead masses, priors, learned CGSchNetForce) for N replicas, start them "
        "from reference frames or a given structure, and run Langevin dynamics, writing an HDF5 trajectory "
        "(docs/data-format.md) and checkpoints; rerunning the same command resumes from the checkpoint.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def _structures(initial: dict, n_replicas: int, n_beads: int, seed):
    import numpy as np

    from ..simulation import initial_structures

    if not initial:
        raise ValueError("the config needs initial.reference (an HDF5 trajectory) or initial.structure")
    if initial.get("reference"):
        from ..data.trajectory import TrajectoryFile

        with TrajectoryFile(initial["reference"]) as handle:
            if handle.n_frames == 0:
                raise ValueError(f"initial.reference {initial['reference']} holds no frames to start from")
        return initial_structures(initial["reference"], n_replicas, n_beads, seed=seed)
    path = initial.get("structure")
    if not path:
        raise ValueError(f"unknown initial settings {sorted(initial)}: use 'reference' or 'structure'")
    if str(path).endswith(".npy"):
        array = np.load(path)
    else:
        import mdtraj

        traj = mdtraj.load(path)
        if traj.n_atoms != n_beads:
            raise ValueError(f"{path} has {traj.n_atoms} atoms but the model has {n_beads} beads")
        array = traj.xyz.astype(float)
    return initial_structures(array, n_replicas, n_beads, seed=seed)


def run_config(config: dict, print_fn=print) -> dict:
    """Run a simulation described by a config dict (the keys of :data:`DEFAULTS`)."""
    from .. import simulation
    from .._config import check_settings
    from ..simulation import CGSimulation

    config = check_settings(config, RULES, "simulate")
    if not config.get("model"):
        raise ValueError("the config needs 'model': the path of a saved CGModel")
    model = simulation.load_cg_model(config["model"])
    platform = None if config["platform"] in (None, "auto") else config["platform"]
    sim = CGSimulation(model, int(config["replicas"]), temperature=config["temperature"],
                       timestep=float(config["timestep"]), friction=float(config["friction"]), platform=platform,
                       platform_properties=config["platform_properties"], seed=config["seed"])
    output = config["output"]
    checkpoint = config["checkpoint"] or (os.path.splitext(output)[0] + ".chk" if output else None)
    resuming = checkpoint is not None and config["resume"] and os.path.exists(checkpoint)
    if not resuming:
        structures = _structures(config["initial"], sim.n_replicas, sim.n_beads, config["seed"])
        sim.set_positions(structures, spacing=config["spacing"])
        if config["minimize"]:
            sim.minimize()
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    print_fn(f"{sim.n_replicas} replica(s) x {sim.n_beads} beads on the {sim.platform_name} platform, "
             f"{sim.temperature:g} K, time step {sim.timestep:g} ps" + (f"; resuming from {checkpoint}" if resuming else ""))
    result = sim.run(int(config["steps"]), int(config["report_interval"]), output, forces=bool(config["forces"]),
                     checkpoint=checkpoint, checkpoint_interval=config["checkpoint_interval"],
                     resume=bool(config["resume"]), overwrite=bool(config["overwrite"]),
                     progress=bool(config["progress"]))
    print_fn(f"{result['steps']} steps in {result['seconds']:.1f} s ({result['steps_per_second']:.0f} steps/s); "
             f"{result['frames']} frames in {output}")
    return result


def run(args):
    from .._config import run_command

    return run_command("simulate", _run, args)


def _run(args):
    from .._config import format_config, load_config

    config = load_config(args.config, args.overrides, DEFAULTS, what="simulate", rules=RULES)
    if args.print_config:
        print(format_config(config))
        return 0
    if args.quiet:
        config["progress"] = False
    run_config(config)
    return 0
