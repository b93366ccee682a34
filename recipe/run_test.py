"""Test of the built package (conda-build runs it in a fresh environment; no GPU is needed).

It checks that the plugin was built for the installed OpenMM and loaded, compares the force on the
CPU platform with the Reference platform, and runs the C++ test programs that build.sh installed.
"""

import os
import subprocess
import sys

import openmm

import openmmcgml
from openmmcgml.platforms import run_platform_check

status = openmmcgml.plugin_status()
running = ".".join(openmm.version.short_version.split(".")[:2])
if status["built_for"] != running:
    sys.exit(f"the plugin was built for OpenMM {status['built_for']} but OpenMM {running} is installed")
for platform in ("Reference", "CPU"):
    if not status["platforms"].get(platform):
        sys.exit(f"the {platform} platform has no openmm-cgml kernels; load failures: {status['failures']}")

for row in run_platform_check(n_beads=10, n_steps=100, platforms=["Reference", "CPU"]):
    if not row["energy_error"] < 1e-4:
        sys.exit(f"the {row['platform']} platform's energy differs from Reference's by {row['energy_error']:.2e}")

test_dir = os.path.join(sys.prefix, "share", "openmm-cgml", "tests")
programs = sorted(name for name in os.listdir(test_dir) if name.startswith("Test"))
if not programs:
    sys.exit(f"no C++ test programs in {test_dir}")
failed = []
for name in programs:
    # GPU tests need a device that build machines lack
    if any(gpu in name for gpu in ("Cuda", "OpenCL", "HIP")):
        print(f"{name}: skipped (needs a GPU)")
        continue
    result = subprocess.run([os.path.join(test_dir, name)], cwd=test_dir)
    print(f"{name}: {'passed' if result.returncode == 0 else 'FAILED'}")
    if result.returncode != 0:
        failed.append(name)
if failed:
    sys.exit(f"C++ tests failed: {', '.join(failed)}")
