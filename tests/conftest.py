import os

# With PoCL installed, OpenCL would become OpenMM's default platform, and OpenMM's minimiser
# crashes on it: code that names no platform gets the CPU platform in the tests.
os.environ.setdefault("OPENMM_DEFAULT_PLATFORM", "CPU")

import pytest  # noqa: E402


def pytest_report_header(config):
    try:
        import openmmcgml

        status = openmmcgml.plugin_status()
        platforms = ", ".join(name for name, ok in status["platforms"].items() if ok)
        return f"openmm-cgml: kernels on {platforms}; built for OpenMM {status['built_for']}"
    except Exception as error:  # the report must not hide the real failure in the tests
        return f"openmm-cgml: plugin status unavailable ({error})"
