"""The plugin's forces: real :class:`openmm.Force` subclasses usable with ``System.addForce``.

Examples
--------
>>> import openmm
>>> from openmmcgml.forces import CGSchNetForce
>>> force = CGSchNetForce(2, 8, 8, 4, 1.0)  # types, features, filters, RBFs, cutoff (nm)
>>> isinstance(force, openmm.Force)
True
"""

from . import _plugin

try:
    from .cgmlswig import CGSchNetForce, DiscriminatorBiasForce
except ImportError as error:  # pragma: no cover - only without a compiled build
    raise ImportError(
        "openmmcgml's compiled bindings are missing: install the package with `pip install .` "
        f"(the import failed with: {error})"
    ) from error

__all__ = ["CGSchNetForce", "DiscriminatorBiasForce"]

_plugin.load_plugins()
