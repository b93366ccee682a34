"""A CG model run at a temperature other than its training temperature warns once, naming both."""

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("torch")

from cg_standin import ALANINE_NAMES, alanine_structure, real_alanine_cgmodel, write_cg_dataset  # noqa: E402
from openmmcgml.simulation import CGSimulation, TemperatureMismatchWarning  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mismatch_warnings(caught):
    return [w for w in caught if issubclass(w.category, TemperatureMismatchWarning)]


@pytest.fixture(scope="module")
def model():
    model = real_alanine_cgmodel(seed=1)
    assert model.temperature == 300.0
    return model


def test_one_warning_per_run_naming_both_temperatures(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # would show a warning per replica or per step, were there any
        sim = CGSimulation(model, 4, temperature=350.0, seed=1, platform="Reference")
        sim.set_positions(alanine_structure())
        sim.run(30, report_interval=10)
        sim.run(60, report_interval=10)
    (warning,) = _mismatch_warnings(caught)
    assert "300 K" in str(warning.message) and "350 K" in str(warning.message)
    assert warning.filename == __file__  # it points at the caller that chose the temperature
    assert sim.temperature == 350.0


@pytest.mark.parametrize("temperature", [None, 300.0, 300])
def test_no_warning_at_the_training_temperature(model, temperature):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = CGSimulation(model, 2, temperature=temperature, seed=1, platform="Reference")
        sim.set_positions(alanine_structure())
        sim.run(20)
    assert not _mismatch_warnings(caught)
    assert sim.temperature == 300.0


def test_cli_simulate_warns_once(model, tmp_path, capsys):
    from openmmcgml.cli import main

    rng = np.random.default_rng(0)
    frames = alanine_structure()[None] + rng.normal(scale=0.01, size=(6, 5, 3))
    reference = write_cg_dataset(tmp_path / "reference.h5", [frames], ALANINE_NAMES)
    model_path = tmp_path / "alanine.pt"
    model.save(model_path)
    config = os.path.join(ROOT, "examples", "configs", "simulate-alanine.yaml")
    args = ["simulate", config, "--set", f"model={model_path}", "--set", "replicas=3", "--set", "steps=20",
            "--set", "report_interval=10", "--set", f"initial.reference={reference}",
            "--set", f"output={tmp_path / 'run.h5'}", "--set", f"checkpoint={tmp_path / 'run.chk'}",
            "--set", "progress=false", "--set", "platform=Reference"]
    # The command line reports each warning as one line on stderr (cgml --debug: Python's form).
    for temperature, expected in ((280, 1), (300, 0)):
        capsys.readouterr()
        assert main(args + ["--set", f"temperature={temperature}", "--set", "overwrite=true",
                            "--set", "resume=false"]) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if "trained at" in line]
        assert len(lines) == expected
        if expected:
            assert lines[0].startswith("cgml simulate: warning:")
            assert "300 K" in lines[0] and "280 K" in lines[0]
