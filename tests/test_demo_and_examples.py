"""The platform check (``cgml platforms``) and the example scripts run and agree across platforms."""

import os
import runpy
import sys

import numpy as np
import pytest

from openmmcgml.cli import main as cgml_main
from openmmcgml.platforms import run_platform_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_platform_check_agrees_with_reference():
    lines = []
    rows = run_platform_check(n_beads=8, n_replicas=2, n_steps=50, print_fn=lines.append)
    names = [row["platform"] for row in rows]
    assert names[0] == "Reference" and "CPU" in names
    for row in rows:
        # Single precision (OpenCL's default) reproduces the Reference energy to ~1e-7.
        assert row["energy_error"] < 1e-5, row
        assert row["steps_per_second"] > 0
    assert any("steps/s" in line for line in lines)


def test_cli_status_and_platforms(capsys):
    assert cgml_main(["status"]) == 0
    assert "Reference  has kernels" in capsys.readouterr().out
    assert cgml_main(["platforms", "--beads", "6", "--steps", "20", "--platforms", "Reference", "CPU"]) == 0
    assert "CPU" in capsys.readouterr().out


def test_readme_first_example_runs_as_written(tmp_path):
    """The README's first code block, run as a user would paste it, prints a finite energy."""
    import re
    import subprocess

    with open(os.path.join(ROOT, "README.md")) as handle:
        block = re.search(r"```python\n(.*?)```", handle.read(), re.S).group(1)
    assert "system.addForce(force)" in block
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    value, unit = result.stdout.split()
    assert unit == "kJ/mol" and np.isfinite(float(value))


def test_example_cg_chain_script(tmp_path, monkeypatch):
    script = os.path.join(ROOT, "examples", "cg_chain_in_openmm.py")
    monkeypatch.setattr(sys, "argv", [script, "--steps", "300", "--output", str(tmp_path)])
    namespace = runpy.run_path(script, run_name="example")
    energy = namespace["main"]()
    assert np.isfinite(energy)
    assert (tmp_path / "chain.dcd").stat().st_size > 0
    assert "CGSchNetForce" in (tmp_path / "system.xml").read_text()


def test_committed_chignolin_model_matches_torch_and_runs(capsys):
    """The shipped chignolin model: OpenMM (Reference and CPU) against its float64 torch twin, then the example."""
    import openmm
    from openmm import unit

    from openmmcgml.cgmodel import CGModel

    example = runpy.run_path(os.path.join(ROOT, "examples", "chignolin_cg_model.py"), run_name="example")
    path = example["MODEL"]
    model = CGModel.load(path)
    assert os.path.getsize(path) < 2_000_000 and model.temperature == 340.0
    vocabulary = model.mapping["type_names"]
    assert [vocabulary[t] for t in model.bead_types] == ["TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP",
                                                         "TYR"]
    frames = example["folded_hairpin_ca"]()[None] + np.random.default_rng(3).normal(scale=0.02, size=(3, 10, 3))
    system = model.create_system(1)
    model.model.double()  # the float64 torch twin as the reference (the file holds float32 weights)
    energies, forces = (t.numpy() for t in model.energy_and_forces(frames))
    for name, tolerance in (("Reference", 1e-9), ("CPU", 1e-4)):
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name))
        for frame, energy, force in zip(frames, energies, forces):
            context.setPositions(frame)
            state = context.getState(getEnergy=True, getForces=True)
            mine = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
            assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
                energy, rel=tolerance, abs=tolerance * 10)
            assert np.abs(mine - force).max() <= tolerance * np.abs(force).max(), name

    result = example["main"](["--replicas", "4", "--steps", "1000"])
    # 2 ps at 340 K from the folded hairpin: the model keeps it folded (its own runs: 1.3 Å mean)
    assert 0.0 < result["rmsd"].mean() < 0.25 and result["q"].mean() > 0.8
    assert "folded fraction" in capsys.readouterr().out
