"""openmmcgml.data: peptides, the all-atom oracle, checkpoints and trajectory files."""

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import openmm.app as app
import pytest

import openmmcgml
from openmmcgml.cli import main as cgml_main
from openmmcgml.data import (
    OracleConfig,
    Trajectory,
    TrajectoryFile,
    TrajectoryMetadata,
    add_hydrogens,
    append_frames,
    build_peptide,
    builtin_system,
    create_oracle_system,
    evaluate_frames,
    generate_oracle,
    load_config,
    load_pdb,
    load_trajectories,
    parse_sequence,
    read_checkpoint,
    read_trajectory,
    resume_oracle,
    run_oracle,
    write_trajectory,
)
from openmmcgml.data import oracle as oracle_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "examples", "configs")
FORCEFIELD = ("amber99sbildn.xml", "amber99_obc.xml")


def _tiny(tmp_path, **changes):
    settings = dict(system="alanine-dipeptide", output=str(tmp_path / "aa.h5"), n_steps=40, save_every=10, platform="Reference")
    settings.update(changes)
    return OracleConfig(**settings)


# ----------------------------------------------------------------------------------- peptides


def test_sequences_in_both_notations():
    assert parse_sequence("yydpetgtwy")[:3] == ["TYR", "TYR", "ASP"]
    assert parse_sequence("ACE-ALA-NME") == ["ACE", "ALA", "NME"]
    assert parse_sequence(["ace", "HIE", "nme"]) == ["ACE", "HIS", "NME"]


@pytest.mark.parametrize(
    "sequence, message",
    [
        ("AXA", "unknown residue 'X' at position 2"),
        ("ACE-XYZ-NME", "unknown residue 'XYZ' at position 2"),
        ("ALA-ACE", "ACE can only start"),
        ("", "empty"),
        ("ACE-NME", "no amino acid"),
    ],
)
def test_bad_sequences_are_named(sequence, message):
    with pytest.raises(ValueError, match=message):
        parse_sequence(sequence)
    if sequence:
        with pytest.raises(ValueError, match=message):
            build_peptide(sequence)


def test_alanine_dipeptide_is_built_offline_with_caps():
    forcefield = app.ForceField(*FORCEFIELD)
    molecule = add_hydrogens(builtin_system("alanine-dipeptide").build(), forcefield)
    assert molecule.n_atoms == 22 and molecule.sequence == "ACE-ALA-NME"
    names = [(atom.residue.name, atom.name) for atom in molecule.topology.atoms()]
    for bead in [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")]:
        assert bead in names
    system = create_oracle_system(molecule.topology, forcefield)
    assert system.getNumConstraints() == 12  # every X-H bond
    # Chemically sensible geometry: the ACE carbonyl C to ALA N peptide bond is about 1.33 A.
    atoms = {(a.residue.name, a.name): a.index for a in molecule.topology.atoms()}
    bond = np.linalg.norm(molecule.positions[atoms["ACE", "C"]] - molecule.positions[atoms["ALA", "N"]])
    assert 0.12 < bond < 0.145


def test_chignolin_is_built_folded():
    molecule = builtin_system("chignolin").build()
    assert molecule.sequence == "YYDPETGTWY"
    ca = np.array([molecule.positions[a.index] for a in molecule.topology.atoms() if a.name == "CA"])
    assert len(ca) == 10
    assert np.allclose(np.linalg.norm(np.diff(ca, axis=0), axis=1), 0.38, atol=0.02)
    # A hairpin: the termini are close (about 0.56 nm, against about 3 nm for an extended chain).
    assert np.linalg.norm(ca[0] - ca[9]) < 0.8
    with pytest.raises(ValueError, match="unknown built-in system 'villin'"):
        builtin_system("villin")


def _pdb_lines(sequence):
    return build_peptide(sequence).to_pdb_string().splitlines()


def test_user_pdb_round_trip(tmp_path):
    path = tmp_path / "gyg.pdb"
    build_peptide("GYG").write_pdb(path)
    molecule = load_pdb(path)
    assert molecule.sequence == "GYG"
    forcefield = app.ForceField(*FORCEFIELD)
    assert add_hydrogens(molecule, forcefield).n_atoms > molecule.n_atoms


def test_pdb_with_missing_atoms_is_named(tmp_path):
    lines = [line for line in _pdb_lines("GYG") if not (line.startswith(("ATOM", "HETATM")) and line[12:16].strip() in ("CG", "OH"))]
    path = tmp_path / "broken.pdb"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"missing heavy atoms in TYR2 \(chain A\): CG, OH"):
        load_pdb(path)
    repaired = load_pdb(path, add_missing_atoms=True)
    assert {"CG", "OH"} <= {a.name for a in repaired.topology.atoms() if a.residue.name == "TYR"}


def test_pdb_with_unknown_residue_is_named(tmp_path):
    lines = [line[:17] + "XYZ" + line[20:] if line.startswith("ATOM") and line[17:20] == "ALA" else line for line in _pdb_lines("GAG")]
    path = tmp_path / "odd.pdb"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"unknown residue\(s\) XYZ2"):
        load_pdb(path)
    with pytest.raises(FileNotFoundError, match="nowhere.pdb"):
        load_pdb(tmp_path / "nowhere.pdb")


# ----------------------------------------------------------------------------------- files


def test_trajectory_shapes_must_agree(tmp_path):
    with pytest.raises(ValueError, match=r"forces have shape \(2, 4, 3\) but coordinates have shape \(2, 3, 3\)"):
        Trajectory(coordinates=np.zeros((2, 3, 3)), forces=np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="step has shape"):
        Trajectory(coordinates=np.zeros((2, 3, 3)), step=[1, 2, 3])
    path = tmp_path / "t.h5"
    frames = Trajectory(np.ones((3, 4, 3)), np.ones((3, 4, 3)), metadata=TrajectoryMetadata("coarse-grained", system="toy"))
    write_trajectory(path, frames)
    with pytest.raises(ValueError, match="holds 4 particles per frame, the new frames 5"):
        append_frames(path, np.zeros((1, 5, 3)), np.zeros((1, 5, 3)))
    with pytest.raises(FileExistsError):
        write_trajectory(path, frames)
    # A file whose datasets disagree (written by someone else's tool) is refused by name.
    with h5py.File(path, "r+") as handle:
        handle["forces"].resize(2, axis=0)
    with pytest.raises(ValueError, match=r"forces have shape \(2, 4, 3\) but coordinates have shape \(3, 4, 3\)"):
        read_trajectory(path)
    with pytest.raises(FileNotFoundError):
        read_trajectory(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(ValueError, match="not an openmm-cgml trajectory file"):
        read_trajectory(tmp_path / "other.h5")


def test_trajectory_round_trip_split_and_concatenate(tmp_path):
    rng = np.random.default_rng(1)
    metadata = TrajectoryMetadata("coarse-grained", system="toy", temperature=300.0, bead_types=[0, 1], type_names=["A", "B"])
    first = Trajectory(rng.normal(size=(6, 2, 3)), rng.normal(size=(6, 2, 3)), trajectory=np.repeat([0, 1], 3), metadata=metadata)
    write_trajectory(tmp_path / "a.h5", first)
    write_trajectory(tmp_path / "b.h5", first[:2])
    both = load_trajectories([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert both.n_frames == 8 and both.trajectory.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert np.array_equal(both.coordinates[:6], first.coordinates.astype(np.float32))
    assert both.metadata.type_names == ["A", "B"]
    train, validation = both.split(0.2, seed=0)
    assert len(train) + len(validation) == 8
    assert not set(train.trajectory) & set(validation.trajectory)
    with TrajectoryFile(tmp_path / "a.h5") as handle:
        assert handle.read([4, 1, 4, -1]).step.tolist() == [4, 1, 4, 5]
        with pytest.raises(IndexError):
            handle.read([6])


# ----------------------------------------------------------------------------------- the oracle


def test_oracle_saves_the_forces_of_its_coordinates(tmp_path):
    result = run_oracle(_tiny(tmp_path))
    assert result.complete and result.n_frames == 4 and result.platform == "Reference"
    data = read_trajectory(result.output)
    meta = data.metadata
    assert meta.resolution == "all-atom" and meta.system == "alanine-dipeptide" and meta.sequence == "ACE-ALA-NME"
    assert meta.forcefield == list(FORCEFIELD) and meta.temperature == 300.0 and meta.timestep == 0.002
    assert meta.save_interval == 10 and meta.length_unit == "nm" and meta.force_unit == "kJ/mol/nm"
    assert meta.extra["seed"] == 0 and meta.extra["constraints"] == "HBonds"
    assert data.step.tolist() == [10, 20, 30, 40] and data.trajectory.tolist() == [0, 0, 0, 0]
    assert data.topology().getNumAtoms() == 22
    with TrajectoryFile(result.output) as handle:
        system_xml, constraints = handle.system_xml, handle.constraints
    assert constraints.shape == (12, 2)
    energies, forces = evaluate_frames(system_xml, data.coordinates, platform="Reference")
    # Saved in float32: agreement to single-precision rounding of the coordinates.
    scale = np.abs(forces).max()
    assert np.abs(forces - data.forces).max() < 1e-4 * scale
    assert np.allclose(energies, data.potential_energy, atol=1e-2)


def test_oracle_maps_on_the_fly(tmp_path):
    from openmmcgml.mapping import map_trajectory_file

    result = run_oracle(_tiny(tmp_path, cg_output=str(tmp_path / "cg.h5"), n_runs=2, equilibration_steps=5))
    cg = read_trajectory(result.cg_output)
    assert cg.n_particles == 5 and cg.metadata.resolution == "coarse-grained"
    assert cg.metadata.bead_names == ["C", "N", "CA", "C", "N"] and cg.metadata.bead_types == [0, 1, 2, 3, 4]
    assert cg.metadata.mapping["force_map"] == "aggregate" and np.isnan(cg.potential_energy).all()
    assert cg.trajectory.tolist() == [0] * 4 + [1] * 4 and cg.step.tolist() == [10, 20, 30, 40] * 2
    offline = map_trajectory_file(result.output, tmp_path / "offline.h5").read()
    assert np.allclose(offline.coordinates, cg.coordinates, atol=1e-6)
    assert np.allclose(offline.forces, cg.forces, atol=1e-3)


def test_oracle_guards_its_files_and_settings(tmp_path):
    config = _tiny(tmp_path)
    run_oracle(config)
    # A finished run is not repeated.
    again = run_oracle(config)
    assert again.complete and again.new_frames == 0 and again.n_frames == 4
    changed = _tiny(tmp_path, temperature=350.0)
    with pytest.raises(ValueError, match=r"temperature: 300.0 -> 350.0"):
        run_oracle(changed)
    with pytest.raises(FileExistsError, match="resume that run"):
        run_oracle(config, resume=False)
    os.remove(config.checkpoint_path())
    with pytest.raises(FileExistsError, match="no checkpoint"):
        run_oracle(config)
    with pytest.raises(ValueError, match="multiple of save_every"):
        OracleConfig.from_dict({"system": "chignolin", "output": "x.h5", "n_steps": 15, "save_every": 10})
    with pytest.raises(ValueError, match="exactly one of system, sequence, pdb"):
        OracleConfig.from_dict({"system": "chignolin", "sequence": "AA", "output": "x.h5"})
    with pytest.raises(ValueError, match="unknown oracle setting"):
        OracleConfig.from_dict({"system": "chignolin", "output": "x.h5", "temprature": 300})
    with pytest.raises(FileNotFoundError, match="nowhere.pdb"):
        run_oracle(OracleConfig(pdb=str(tmp_path / "nowhere.pdb"), output=str(tmp_path / "p.h5"), n_steps=10, save_every=10))


def test_oracle_from_a_sequence_writing_only_cg_frames(tmp_path):
    config = OracleConfig(sequence="GAG", cg_output=str(tmp_path / "gag-cg.h5"), n_steps=20, save_every=10, seed=None)
    result = run_oracle(config)
    assert result.output is None and result.checkpoint == str(tmp_path / "gag-cg.h5.chk")
    data = read_trajectory(result.cg_output)
    assert data.metadata.system == "GAG" and data.n_particles == 3 and data.n_frames == 2
    assert isinstance(data.metadata.extra["seed"], int)
    assert os.listdir(tmp_path) == ["gag-cg.h5", "gag-cg.h5.chk"] or sorted(os.listdir(tmp_path)) == ["gag-cg.h5", "gag-cg.h5.chk"]


def _contiguous(path, n_runs, frames_per_run, save_every):
    data = read_trajectory(path)
    expected_steps = np.tile(np.arange(1, frames_per_run + 1) * save_every, n_runs)
    expected_runs = np.repeat(np.arange(n_runs), frames_per_run)
    return np.array_equal(data.step, expected_steps) and np.array_equal(data.trajectory, expected_runs)


def test_frames_in_the_checkpoint_are_replayed(tmp_path, monkeypatch):
    """A run killed after its checkpoint but before (or during) the HDF5 append loses nothing."""
    config = _tiny(tmp_path, n_steps=100, flush_every=3, cg_output=str(tmp_path / "cg.h5"))
    real_append, calls = oracle_module.append_frames, []

    def failing_append(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # the second chunk's AA frames are in the checkpoint, not yet in the file
            raise KeyboardInterrupt("simulated kill")
        return real_append(path, *args, **kwargs)

    monkeypatch.setattr(oracle_module, "append_frames", failing_append)
    with pytest.raises(KeyboardInterrupt):
        run_oracle(config)
    monkeypatch.setattr(oracle_module, "append_frames", real_append)
    assert read_checkpoint(config.checkpoint_path()).info["n_frames"] == 6
    assert read_trajectory(config.output).n_frames == 3
    # Damage the tail as a half-finished append would: frames beyond the checkpoint are dropped.
    real_append(config.cg_output, np.zeros((5, 5, 3)), np.zeros((5, 5, 3)), 0.0, 0, np.arange(5))
    result = run_oracle(config)
    assert result.n_frames == 10 and result.new_frames == 4
    assert _contiguous(config.output, 1, 10, 10) and _contiguous(config.cg_output, 1, 10, 10)


def test_interrupted_run_continues_on_another_machine(tmp_path):
    """Stop after the first chunk, move files and checkpoint elsewhere, resume there on another platform."""
    first = tmp_path / "first"
    config = OracleConfig(system="alanine-dipeptide", output=str(first / "aa.h5"), n_steps=60, save_every=10, flush_every=2,
                          n_runs=2, platform="Reference")

    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        run_oracle(config, progress=stop)
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(first / "aa.h5", second / "aa.h5")
    shutil.copy(first / "aa.h5.chk", second / "aa.h5.chk")
    shutil.rmtree(first)
    result = resume_oracle(second / "aa.h5.chk", output=str(second / "aa.h5"), platform="CPU", threads=1)
    assert result.complete and result.platform == "CPU" and result.n_frames == 12
    assert _contiguous(second / "aa.h5", 2, 6, 10)
    history = read_checkpoint(second / "aa.h5.chk").info["history"]
    assert [entry["platform"] for entry in history][:1] == ["Reference"] and history[-1]["platform"] == "CPU"


def test_a_run_may_continue_with_cg_frames_only(tmp_path):
    config = _tiny(tmp_path, cg_output=str(tmp_path / "cg.h5"), flush_every=2)

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        run_oracle(config, progress=stop)
    os.remove(config.output)
    result = resume_oracle(config.checkpoint_path(), output=None)
    assert result.complete and result.output is None
    assert _contiguous(config.cg_output, 1, 4, 10)
    with pytest.raises(ValueError, match="cannot start writing output"):
        resume_oracle(config.checkpoint_path(), output=str(tmp_path / "new.h5"))


def test_killed_oracle_resumes_without_losing_or_repeating_frames(tmp_path):
    """Start the oracle in a subprocess, kill -9 it after some frames are flushed, resume, check the frames."""
    output = tmp_path / "aa.h5"
    settings = ["system=alanine-dipeptide", f"output={output}", "n_steps=20000", "save_every=20", "flush_every=25",
                "platform=Reference", "seed=3"]
    environment = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(openmmcgml.__file__))
    environment["PYTHONPATH"] = os.pathsep.join([package_root, environment.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "openmmcgml.cli", "oracle", "--quiet"] + [f"--set={item}" for item in settings]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = str(output) + ".chk"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None:
            if os.path.exists(checkpoint) and read_checkpoint(checkpoint).info["n_frames"] >= 100:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    state = read_checkpoint(checkpoint).info
    assert not state["complete"] and 100 <= state["n_frames"] < 1000
    before = read_trajectory(output)
    assert before.n_frames <= state["n_frames"]
    result = run_oracle(OracleConfig.from_dict(load_config(None, settings)))
    assert result.complete and result.n_frames == 1000
    after = read_trajectory(output)
    assert _contiguous(output, 1, 1000, 20)
    assert np.array_equal(after.coordinates[: before.n_frames], before.coordinates)
    assert np.array_equal(after.forces[: before.n_frames], before.forces)


def test_generate_oracle_reference_data(tmp_path):
    result = generate_oracle("alanine-dipeptide", n_steps=30, save_every=10, seed=5, out=str(tmp_path / "ala.h5"),
                             cg_out=str(tmp_path / "ala-cg.h5"))
    assert result.n_frames == 3 and result.frames_per_second > 0 and result.ns_per_day > 0
    assert "frames/s" in result.summary()
    assert read_trajectory(result.cg_output).metadata.extra["seed"] == 5


# ----------------------------------------------------------------------------------- configs and CLI


def test_config_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("system: chignolin\nn_steps: 100\nmapping: ca\n")
    config = load_config(path, ["n_steps=50", "forcefield=[a.xml, b.xml]", "seed=null", "mapping.bead_types=position"])
    assert config == {"system": "chignolin", "n_steps": 50, "forcefield": ["a.xml", "b.xml"], "seed": None,
                      "mapping": {"kind": "ca", "bead_types": "position"}}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_config(path, ["n_steps"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.yaml")


#: Every example config of the oracle and the mapper, with the overrides that make it tiny.
EXAMPLES = {
    "oracle-alanine.yaml": ["output={tmp}/ala.h5", "n_steps=40", "save_every=10", "equilibration_steps=10", "n_runs=2"],
    "map-alanine.yaml": ["input={tmp}/ala.h5", "output={tmp}/ala-cg.h5"],
    "oracle-chignolin.yaml": ["output={tmp}/cln.h5", "cg_output={tmp}/cln-cg.h5", "n_steps=20", "save_every=10",
                              "equilibration_steps=0", "n_runs=1"],
    "map-chignolin.yaml": ["input={tmp}/cln.h5", "output={tmp}/cln-cg-offline.h5"],
    "oracle-chignolin-reference.yaml": ["output={tmp}/cln-ref.h5", "cg_output={tmp}/cln-ref-cg.h5", "n_steps=20",
                                        "save_every=10", "equilibration_steps=0", "n_runs=1"],
    "oracle-alanine-long-reference.yaml": ["cg_output={tmp}/ala-long-cg.h5", "n_steps=40", "save_every=10",
                                           "equilibration_steps=10", "n_runs=2"],
}


def test_every_example_config_has_a_test():
    mine = {name for name in os.listdir(CONFIGS) if name.startswith(("oracle-", "map-")) and name.endswith(".yaml")}
    assert mine == set(EXAMPLES)


def test_example_configs_run_through_the_cli(tmp_path, capsys):
    for name, overrides in EXAMPLES.items():  # in order: the map configs read the oracle's output
        command = "oracle" if name.startswith("oracle-") else "map"
        arguments = [command, os.path.join(CONFIGS, name), "--quiet"]
        for item in overrides:
            arguments += ["--set", item.format(tmp=tmp_path)]
        assert cgml_main(arguments) == 0, name
    output = capsys.readouterr().out
    assert "frames/s" in output and "written to" in output
    ala = read_trajectory(tmp_path / "ala-cg.h5")
    assert ala.n_particles == 5 and ala.n_frames == 8
    long_reference = read_trajectory(tmp_path / "ala-long-cg.h5")
    assert long_reference.n_particles == 5 and long_reference.n_frames == 8
    cln = read_trajectory(tmp_path / "cln-cg.h5")
    assert cln.n_particles == 10 and cln.metadata.temperature == 420.0  # examples/configs/oracle-chignolin.yaml
    assert cln.metadata.type_names[cln.metadata.bead_types[0]] == "TYR"
    offline = read_trajectory(tmp_path / "cln-cg-offline.h5")
    assert np.allclose(offline.forces, cln.forces, atol=1e-3)


def test_cli_print_config_and_bad_settings(tmp_path, capsys):
    assert cgml_main(["oracle", "--set", "system=chignolin", "--set", f"output={tmp_path}/x.h5", "--print-config"]) == 0
    assert "temperature: 340.0" in capsys.readouterr().out
    assert cgml_main(["map", "--set", "input=a.h5", "--set", "output=b.h5", "--set", "mapping=ca"]) == 2
    assert "cgml map: error: unknown map setting(s) mapping" in capsys.readouterr().err
    assert cgml_main(["oracle", "--set", "system=villin", "--set", "output=x.h5"]) == 2
    assert "unknown built-in system 'villin'" in capsys.readouterr().err


def test_oracle_runs_are_reproducible_from_their_seed(tmp_path):
    """Same seed, same frames (the hydrogens Modeller places at random start from a fixed stream)."""
    import random

    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        random.seed(name)  # whatever the caller did with Python's random numbers
        generate_oracle("alanine-dipeptide", n_steps=200, save_every=50, seed=seed, out=str(tmp_path / f"{name}.h5"),
                        platform="Reference")
        runs[name] = read_trajectory(tmp_path / f"{name}.h5")
    assert np.array_equal(runs["a"].coordinates, runs["b"].coordinates)
    assert np.array_equal(runs["a"].forces, runs["b"].forces)
    assert np.abs(runs["a"].coordinates - runs["c"].coordinates).max() > 1e-3


def test_atomic_write_keeps_the_old_file_when_the_writer_is_killed(tmp_path):
    import doctest

    from openmmcgml import _atomic

    assert doctest.testmod(_atomic).failed == 0
    path = tmp_path / "model.bin"
    with _atomic.atomic_write(path) as handle:
        handle.write(b"complete old file")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of a temporary file
    # A process killed (SIGKILL: no cleanup runs) in the middle of writing the new version.
    script = (
        "import os, sys, time\n"
        "from openmmcgml._atomic import atomic_write\n"
        f"with atomic_write({str(path)!r}) as handle:\n"
        "    handle.write(b'half of the new')\n"
        "    handle.flush()\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert path.read_bytes() == b"complete old file"
    with pytest.raises(IsADirectoryError, match="is a directory"):
        with _atomic.atomic_write(tmp_path) as handle:
            pass
    with pytest.raises(ValueError, match="mode must be"):
        with _atomic.atomic_write(path, "a") as handle:
            pass


# ----------------------------------------------------------------------------------- the split


def test_split_by_trajectory():
    from openmmcgml.data import index_ranges, ranges_to_indices, split_by_trajectory

    t = np.repeat([5, 6, 7, 8, 9], 3)
    train, val, held = split_by_trajectory(t, 0.4, seed=0)
    assert len(held) == 2 and set(t[val]) == set(held) and not set(t[train]) & set(held)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(t)))
    assert split_by_trajectory(t, 0.4, seed=0)[2] == held  # reproducible
    train, val, held = split_by_trajectory(t, validation_trajectories=[9])
    assert held == [9] and list(val) == [12, 13, 14]
    with pytest.raises(ValueError, match="not in the data"):
        split_by_trajectory(t, validation_trajectories=[1])
    with pytest.raises(ValueError, match="none is left"):
        split_by_trajectory(t, validation_trajectories=[5, 6, 7, 8, 9])
    with pytest.warns(UserWarning, match="single trajectory"):
        train, val, held = split_by_trajectory(np.zeros(10, dtype=int), 0.2)
    assert list(val) == [8, 9] and held == []
    # a Trajectory splits the same way
    frames = Trajectory(np.zeros((15, 2, 3)), trajectory=t)
    train_frames, val_frames = frames.split(0.4, seed=0)
    assert sorted(set(val_frames.trajectory.tolist())) == split_by_trajectory(t, 0.4, seed=0)[2]
    assert len(train_frames) == 9 and train_frames.source is None
    # validation frames written compactly and read back
    for indices in ([], [3], [0, 1, 2, 7, 8, 20], list(range(100))):
        assert ranges_to_indices(index_ranges(indices)).tolist() == indices
    assert index_ranges([0, 1, 2, 7, 8, 20]) == [[0, 3], [7, 9], [20, 21]]
    with pytest.raises(ValueError, match="ascending"):
        index_ranges([3, 1])


def test_one_reader_for_hand_written_and_cg_files(tmp_path):
    """Plain-h5py files with only coordinates and forces read, with the defaults of the absent
    per-frame datasets; bead lists of the wrong length, broken JSON and a wrong resolution are
    named; appending needs the whole layout; a stride thins the frames and is recorded."""
    import json

    path = tmp_path / "hand.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "openmm-cgml-trajectory", "resolution": "coarse-grained",
                             "bead_names": json.dumps(["A", "B"])})
        handle["coordinates"] = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
        handle["forces"] = np.ones((4, 2, 3), dtype=np.float32)
    with pytest.warns(UserWarning, match="no trajectory dataset; all frames count as one trajectory"):
        frames = read_trajectory(path, frames=slice(None, None, 2), resolution="coarse-grained")
    assert frames.n_frames == 2 and frames.trajectory.tolist() == [0, 0] and frames.step.tolist() == [0, 2]
    assert np.isnan(frames.potential_energy).all() and frames.coordinates[1, 0, 0] == 12.0
    assert frames.source == {"path": os.path.abspath(path), "stride": 2}
    with pytest.warns(UserWarning, match="no trajectory dataset"):
        assert read_trajectory(path, frames=[3, 1], resolution="coarse-grained").source["stride"] is None
    with pytest.raises(ValueError, match="a stride must be a positive integer"):
        read_trajectory(path, frames=slice(None, None, -1))
    with pytest.raises(ValueError, match="lacks the dataset"):
        append_frames(path, np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"has resolution 'coarse-grained'; this needs an all-atom dataset"):
        read_trajectory(path, resolution="all-atom")
    with h5py.File(path, "r+") as handle:
        handle.attrs["bead_names"] = json.dumps(["A", "B", "C"])
    with pytest.raises(ValueError, match="attribute bead_names lists 3 beads but the coordinates have 2"):
        read_trajectory(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["bead_names"] = "[broken"
    with pytest.raises(ValueError, match="attribute 'bead_names' is not valid JSON"):
        read_trajectory(path)
    with pytest.raises(ValueError, match=r"dataset .*a-folder is a directory"):
        os.mkdir(tmp_path / "a-folder")
        read_trajectory(tmp_path / "a-folder")


def test_data_layer_docstring_examples():
    import doctest

    from openmmcgml.data import split, trajectory

    for module in (trajectory, split):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0, module.__name__
