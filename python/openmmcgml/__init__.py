"""Learned coarse-grained potentials as native OpenMM forces.

Importing the package makes sure the plugin's platform libraries are loaded into OpenMM (they
normally are already, by ``import openmm``); :func:`plugin_status` reports what loaded.

Examples
--------
>>> import openmmcgml
>>> sorted(openmmcgml.plugin_status()["platforms"])  # doctest: +SKIP
['CPU', 'OpenCL', 'Reference']
"""

from ._plugin import load_plugins, plugin_status

__version__ = "0.1.0"
__all__ = ["CGSchNetForce", "load_plugins", "plugin_status", "__version__"]

load_plugins()


def __getattr__(name):
    # The force classes need the compiled extension; import it on first use so that the pure
    # Python parts (models, analysis) work in an environment without the plugin.
    if name == "CGSchNetForce":
        from .forces import CGSchNetForce

        return CGSchNetForce
    raise AttributeError(f"module 'openmmcgml' has no attribute {name!r}")
