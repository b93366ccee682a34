"""The package's import structure: the library does not import its command line, and no module
imports another in a circle.

Imports are read statically with :mod:`ast` from python/openmmcgml/**/*.py: module-level and
function-level ones alike (a function-level import runs as soon as the function does), relative
ones resolved against the importing module's package.  ``from package import name`` counts as an
import of the submodule ``package.name`` when that is a module, else of ``package`` itself.
"""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "python")
PACKAGE = "openmmcgml"


# ------------------------------------------------------------------------------ the import graph

def package_modules(source, package):
    """{module name: (path, is a package)} of every .py file under ``source/package``."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(source, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, source)[:-3].split(os.sep)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _bound_names(tree):
    """Names a module binds at its top level (functions, classes, assignments, imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _type_checking_nodes(tree):
    """Import nodes inside ``if TYPE_CHECKING:`` blocks (never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def import_graph(source=SOURCE, package=PACKAGE):
    """{module: set of the package's modules it imports, anywhere in its code}."""
    modules = package_modules(source, package)
    trees = {name: ast.parse(open(path).read(), path) for name, (path, _) in modules.items()}
    bound = {name: _bound_names(tree) for name, tree in trees.items() if modules[name][1]}

    def owner(name):
        """The package's module that importing ``name`` runs last (None: outside the package)."""
        parent = name.rpartition(".")[0]
        if name not in modules and parent in modules and modules[parent][1]:
            # A submodule with no .py file in the source tree: a compiled or generated module (the
            # SWIG extension, which the build writes), importing nothing of the package.
            return None
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name if name and name.split(".")[0] == package else None

    graph = {}
    for name, tree in trees.items():
        is_package = modules[name][1]
        skipped = _type_checking_nodes(tree)
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module
                for alias in node.names:
                    candidate = f"{origin}.{alias.name}"
                    if candidate in modules:
                        targets.add(candidate)
                    elif origin in bound and alias.name not in bound[origin] and alias.name != "*":
                        # not defined by the package: a submodule that is not a .py file (the
                        # compiled SWIG extension), outside the graph
                        continue
                    else:
                        targets.add(owner(origin))
        graph[name] = {target for target in targets if target is not None and target != name}
    return graph


def find_cycle(graph):
    """One cycle of imports as a list of modules (first == last), or None."""
    state = {}  # module -> 1 while on the current path, 2 when done
    path = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


# ------------------------------------------------------------------------------ the walker itself

def _write(folder, files):
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_walker_resolves_relative_and_function_level_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .core import run\n",
        "pkg/core.py": "def run():\n    from .sub import helpers\n    return helpers\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/helpers.py": "from ..core import run  # a cycle through a function-level import\n",
        "pkg/sub/leaf.py": "from .. import core\nfrom . import _compiled\nimport pkg.sub\n"
                           "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\n",
        "pkg/cli.py": "import os\n",
    })
    graph = import_graph(str(tmp_path), "pkg")
    assert graph["pkg"] == {"pkg.core"}
    assert graph["pkg.core"] == {"pkg.sub.helpers"}
    assert graph["pkg.sub.helpers"] == {"pkg.core"}
    assert graph["pkg.sub.leaf"] == {"pkg.core", "pkg.sub"}  # no compiled module, no TYPE_CHECKING import
    assert find_cycle(graph) == ["pkg.core", "pkg.sub.helpers", "pkg.core"]
    del graph["pkg.sub.helpers"]
    assert find_cycle(graph) is None


# ------------------------------------------------------------------------------ the package

def test_the_library_does_not_import_the_command_line():
    """No module outside openmmcgml.cli and openmmcgml.commands imports either, at any level."""
    graph = import_graph()
    assert "openmmcgml.commands.train" in graph and "openmmcgml.workflow" in graph  # the walk found the package
    cli = {name for name in graph if name == "openmmcgml.cli" or name.startswith("openmmcgml.commands")}
    offenders = {name: sorted(targets & cli) for name, targets in graph.items() if name not in cli and targets & cli}
    assert not offenders, offenders


def test_importing_the_workflow_loads_no_command_module():
    """``import openmmcgml.workflow`` (and building the demo's settings, which imports the
    commands' settings) loads no module of openmmcgml.commands."""
    code = ("import sys, openmmcgml.workflow as workflow\n"
            "workflow.demo_config(quick=True)\n"
            "loaded = sorted(name for name in sys.modules if name.startswith('openmmcgml.commands'))\n"
            "assert 'openmmcgml.configs.train' in sys.modules\n"
            "print(loaded)\n")
    # the same environment as this session, so the same copy of the package
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_no_module_imports_another_in_a_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_command_has_one_settings_dataclass_and_run():
    """Each config-driven command's settings live in openmmcgml.configs: one Settings dataclass
    read by the one loader, DEFAULTS and RULES derived from it, and run_config(config, quiet=...)."""
    import dataclasses
    import importlib
    import inspect

    from openmmcgml import _config, configs

    for name in configs.COMMANDS:
        module = importlib.import_module(f"openmmcgml.configs.{name}")
        classes = [value for value in vars(module).values() if isinstance(value, type)
                   and issubclass(value, _config.Settings) and value.WHAT == name.replace("_", "-")]
        assert len(classes) == 1, (name, classes)
        settings = classes[0]
        assert dataclasses.is_dataclass(settings)
        assert module.DEFAULTS == settings.defaults() and module.RULES.keys() == settings.rules().keys(), name
        parameters = inspect.signature(module.run_config).parameters
        assert parameters["quiet"].kind is inspect.Parameter.KEYWORD_ONLY and parameters["quiet"].default is False
        # the loader refuses an unknown setting, naming the command (bad values: test_cli_bad_input.py)
        with pytest.raises(ValueError, match=f"unknown {name.replace('_', '-')} setting"):
            settings.from_dict({"no_such_setting": 1})
    # the command line only parses arguments: no command module runs a config itself
    assert not [name for name in os.listdir(os.path.join(SOURCE, PACKAGE, "commands"))
                if name.endswith(".py") and "def run_config" in open(os.path.join(SOURCE, PACKAGE, "commands", name)).read()]
