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
    assert '"Reference": true' in capsys.readouterr().out
    assert cgml_main(["platforms", "--beads", "6", "--steps", "20", "--platforms", "Reference", "CPU"]) == 0
    assert "CPU" in capsys.readouterr().out


def test_example_cg_chain_script(tmp_path, monkeypatch):
    script = os.path.join(ROOT, "examples", "cg_chain_in_openmm.py")
    monkeypatch.setattr(sys, "argv", [script, "--steps", "300", "--output", str(tmp_path)])
    namespace = runpy.run_path(script, run_name="example")
    energy = namespace["main"]()
    assert np.isfinite(energy)
    assert (tmp_path / "chain.dcd").stat().st_size > 0
    assert "CGSchNetForce" in (tmp_path / "system.xml").read_text()
