"""The conda-forge recipe (recipe/) agrees with pyproject.toml and CMake, so that they cannot drift apart.

No conda channel is reachable here, so the recipe cannot be built: it is rendered as conda-build
renders it (Jinja2 with stand-ins for conda-build's functions, then the ``# [selector]`` lines,
then YAML), for its CPU and CUDA variants, and its name, version, dependencies and pins are compared
with pyproject.toml and with the OpenMM version that cmake/FindOpenMM.cmake requires.  Each check is
shown to catch a change made on one side only, on a mutated copy of the files.
"""

import os
import re
import shutil

import pytest

jinja2 = pytest.importorskip("jinja2")
yaml = pytest.importorskip("yaml")
try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")
from packaging.requirements import Requirement  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.version import Version  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: PyPI name (lower case) -> conda-forge name, where they differ.  matplotlib-base is matplotlib
#: without a GUI backend, what conda-forge asks libraries to depend on.
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
#: Run requirements of the recipe that are not Python dependencies: the interpreter and the OpenCL
#: ICD loader the OpenCL plugin links (ocl-icd-system lets it find the system's drivers).
RECIPE_ONLY_RUN = {"python", "ocl-icd", "ocl-icd-system"}
#: conda-forge's variants of a Linux build: CPU, and CUDA (one toolkit version stands for all).
VARIANTS = {"cpu": {"cuda_compiler_version": "None"}, "cuda": {"cuda_compiler_version": "12.9"}}
#: The files the checks read, relative to the repository root.
FILES = ("pyproject.toml", "LICENSE", "cmake/FindOpenMM.cmake", "recipe/meta.yaml", "recipe/build.sh",
         "recipe/run_test.py")


# ----------------------------------------------------------------------------- rendering


def conda_pin(version: str, min_pin: str, max_pin: str) -> str:
    """The version range conda-build's ``pin_compatible`` writes for an installed ``version``.

    The lower bound keeps as many fields of the version as ``min_pin`` has ``x``; the upper bound
    keeps as many as ``max_pin`` has (at most all of them), adds one to the last, and excludes its
    pre-releases with ``a0``: 8.6.1 with ``x.x``, ``x.x`` gives ``>=8.6,<8.7a0``.
    """
    fields = [int(part) for part in version.split(".")]
    bounds = []
    if min_pin:
        bounds.append(">=" + ".".join(str(f) for f in fields[:len(min_pin.split("."))]))
    if max_pin:
        upper = fields[:min(len(max_pin.split(".")), len(fields))]
        upper[-1] += 1
        bounds.append("<" + ".".join(str(f) for f in upper) + "a0")
    return ",".join(bounds)


class _PinCompatible:
    """Stands in for conda-build's ``pin_compatible``: records each call, returns a token for it."""

    def __init__(self):
        self.calls = {}

    def __call__(self, name, min_pin="x.x.x.x.x.x", max_pin="x", lower_bound=None, upper_bound=None, exact=False):
        if lower_bound or upper_bound or exact:
            raise NotImplementedError("the stand-in knows min_pin and max_pin only")
        token = f"{name} PIN_COMPATIBLE_{len(self.calls)}"
        self.calls[token] = (name, min_pin, max_pin)
        return token


_SELECTOR = re.compile(r"^(?P<line>.*?)\s*#\s*\[(?P<expression>.+)\]\s*$")


def render_recipe(recipe_dir, variant, python="3.11"):
    """Render ``meta.yaml`` for one variant on linux-64, as conda-build does.

    Returns
    -------
    meta : dict
        The parsed recipe.
    pins : dict
        ``pin_compatible`` tokens found in requirement strings -> (name, min_pin, max_pin).
    """
    major, minor = (int(part) for part in python.split("."))
    with open(os.path.join(recipe_dir, "meta.yaml")) as handle:
        source = handle.read()
    pin_compatible = _PinCompatible()
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = environment.from_string(source).render(
        compiler=lambda language: f"compiler-{language}",
        stdlib=lambda language: f"stdlib-{language}",
        pin_compatible=pin_compatible,
        environ={}, CONDA_PY=f"{major}{minor}", PY_VER=python, PKG_HASH="0123abc", PKG_BUILDNUM="0",
        **variant)
    namespace = {"linux": True, "linux64": True, "unix": True, "x86_64": True, "osx": False, "win": False,
                 "aarch64": False, "ppc64le": False, "arm64": False, "py": int(f"{major}{minor}"), "py3k": major == 3, "build_platform": "linux-64",
                 "target_platform": "linux-64", **variant}
    kept = []
    for line in text.splitlines():
        match = _SELECTOR.match(line)
        if match is None:
            kept.append(line)
        elif eval(match["expression"], {"__builtins__": {}}, namespace):  # noqa: S307 (the recipe's own selectors)
            kept.append(match["line"])
    return yaml.safe_load("\n".join(kept)), pin_compatible.calls


# ----------------------------------------------------------------------------- comparing


def _normalise(spec: str) -> str:
    """A version range in one spelling: no spaces, lower bounds first (">=8.6,<8.7")."""
    parts = [part.strip().replace(" ", "") for part in spec.split(",") if part.strip()]
    return ",".join(sorted(parts, key=lambda part: (not part.startswith(">"), part)))


def _conda_requirements(entries):
    """'name spec' strings -> {name: spec}."""
    parsed = {}
    for entry in entries or []:
        name, _, spec = str(entry).strip().partition(" ")
        parsed[name] = spec.strip()
    return parsed


def _pypi_requirements(requirements):
    """PEP 508 strings -> {conda-forge name: spec}."""
    parsed = {}
    for text in requirements:
        requirement = Requirement(text)
        name = requirement.name.lower()
        parsed[CONDA_NAMES.get(name, name)] = _normalise(str(requirement.specifier))
    return parsed


def _cmake_openmm_spec(root):
    with open(os.path.join(root, "cmake", "FindOpenMM.cmake")) as handle:
        match = re.search(r'set\(OPENMM_CGML_REQUIRED_OPENMM "(\d+)\.(\d+)"\)', handle.read())
    if match is None:
        return None
    major, minor = int(match[1]), int(match[2])
    return _normalise(f">={major}.{minor},<{major}.{minor + 1}")


def recipe_problems(root=ROOT):
    """Every disagreement between recipe/, pyproject.toml and CMake, as sentences (empty: none)."""
    problems = []
    with open(os.path.join(root, "pyproject.toml"), "rb") as handle:
        pyproject = tomllib.load(handle)
    project = pyproject["project"]
    dependencies = _pypi_requirements(project["dependencies"])
    build_system = _pypi_requirements(pyproject["build-system"]["requires"])
    openmm_spec = dependencies.get("openmm")
    cmake_spec = _cmake_openmm_spec(root)
    if cmake_spec is None:
        problems.append("cmake/FindOpenMM.cmake does not set OPENMM_CGML_REQUIRED_OPENMM")
    elif openmm_spec != cmake_spec:
        problems.append(f"pyproject's openmm {openmm_spec} is not CMake's required OpenMM {cmake_spec}")
    if build_system.get("openmm") != openmm_spec:
        problems.append(f"pyproject's build-system openmm {build_system.get('openmm')} is not its dependency "
                        f"openmm {openmm_spec}")
    minimum_python = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    if minimum_python is None:
        problems.append(f"requires-python {project['requires-python']!r} is not of the form >=X.Y")
        return problems
    python_major, python_minor = int(minimum_python[1]), int(minimum_python[2])
    recipe_dir = os.path.join(root, "recipe")

    for variant_name, variant in VARIANTS.items():
        meta, pins = render_recipe(recipe_dir, variant, python=f"{python_major}.{python_minor}")
        where = f"recipe ({variant_name} variant)"
        if meta["package"]["name"] != project["name"]:
            problems.append(f"{where} name {meta['package']['name']!r} is not pyproject's {project['name']!r}")
        if str(meta["package"]["version"]) != project["version"]:
            problems.append(f"{where} version {meta['package']['version']} is not pyproject's {project['version']}")

        # Python: built for requires-python's minimum, skipped below it
        if meta["build"].get("skip"):
            problems.append(f"{where} skips Python {python_major}.{python_minor}, which requires-python allows")
        older, _ = render_recipe(recipe_dir, variant, python=f"{python_major}.{python_minor - 1}")
        if not older["build"].get("skip"):
            problems.append(f"{where} builds for Python {python_major}.{python_minor - 1}, below requires-python")

        requirements = meta["requirements"]
        build = _conda_requirements(requirements.get("build"))
        host = _conda_requirements(requirements.get("host"))
        run = _conda_requirements(requirements.get("run"))
        for name in ("python", "pip"):
            if name not in host:
                problems.append(f"{where} host requirements lack {name}")
        if "python" not in run:
            problems.append(f"{where} run requirements lack python")

        # run requirements = pyproject's dependencies, by conda-forge name, with the same versions
        recipe_run = {name: spec for name, spec in run.items() if name not in RECIPE_ONLY_RUN}
        for name in sorted(set(dependencies) - set(recipe_run)):
            problems.append(f"{where} run requirements lack pyproject dependency {name}")
        for name in sorted(set(recipe_run) - set(dependencies)):
            problems.append(f"{where} run requirement {name} is not a pyproject dependency")
        for name in sorted(set(dependencies) & set(recipe_run) - {"openmm"}):
            if _normalise(recipe_run[name]) != dependencies[name]:
                problems.append(f"{where} run requirement {name} {recipe_run[name]} is not pyproject's "
                                f"{name} {dependencies[name]}")

        # openmm: the minor version in host, pinned in run by pin_compatible to that minor version
        host_openmm = _normalise(host.get("openmm", ""))
        if host_openmm != openmm_spec:
            problems.append(f"{where} host openmm {host_openmm or '(unpinned)'} is not pyproject's {openmm_spec}")
        pin = pins.get(f"openmm {recipe_run.get('openmm', '')}".strip())
        if pin is None:
            problems.append(f"{where} run requirement openmm is not pin_compatible('openmm', ...)")
        elif host_openmm:
            allowed = SpecifierSet(host_openmm)
            lowest = min((Version(s.version) for s in allowed if s.operator == ">="), default=None)
            candidates = [] if lowest is None else [str(lowest), f"{lowest}.0", f"{lowest}.7"]
            for installed in (v for v in candidates if Version(v) in allowed):
                pinned = _normalise(conda_pin(installed, pin[1], pin[2]).replace("a0", ""))
                if pinned != openmm_spec:
                    problems.append(f"{where} run pin of openmm (min_pin={pin[1]!r}, max_pin={pin[2]!r}) gives "
                                    f"{pinned} when built with openmm {installed}, not pyproject's {openmm_spec}")
                    break

        # the build backend and its tools, as pyproject's build-system asks
        for name, spec in build_system.items():
            ours = build.get(name, host.get(name))
            if ours is None:
                problems.append(f"{where} lacks build-system requirement {name}")
            elif _normalise(ours) != spec:
                problems.append(f"{where} build-system requirement {name} {ours} is not pyproject's {spec}")

        # CPU and CUDA variants
        cuda = variant["cuda_compiler_version"] != "None"
        string = str(meta["build"].get("string", ""))
        if cuda:
            if "compiler-cuda" not in build:
                problems.append(f"{where} has no CUDA compiler in its build requirements")
            if host.get("cuda-version") != variant["cuda_compiler_version"]:
                problems.append(f"{where} does not pin cuda-version to the CUDA compiler's")
            if not string.startswith("cuda" + variant["cuda_compiler_version"].replace(".", "")):
                problems.append(f"{where} build string {string!r} does not name the CUDA version")
        else:
            if "compiler-cuda" in build or "cuda-version" in host:
                problems.append(f"{where} has CUDA requirements")
            if not string.startswith("cpu_"):
                problems.append(f"{where} build string {string!r} does not say cpu")
        if "compiler-cxx" not in build:
            problems.append(f"{where} has no C++ compiler")

        # licence and tests
        about = meta.get("about", {})
        if about.get("license") != project["license"]:
            problems.append(f"{where} license {about.get('license')!r} is not pyproject's {project['license']!r}")
        license_path = os.path.join(root, str(about.get("license_file", "")))
        if not about.get("license_file") or not os.path.isfile(license_path):
            problems.append(f"{where} license_file {about.get('license_file')!r} does not exist")
        elif project["license"] == "MIT":
            with open(license_path) as handle:
                if handle.readline().strip() != "MIT License":
                    problems.append(f"{license_path} is not the MIT licence that pyproject declares")
        test = meta.get("test", {})
        if "openmmcgml" not in (test.get("imports") or []):
            problems.append(f"{where} test section does not import openmmcgml")
        commands = " ".join(test.get("commands") or [])
        for script in project.get("scripts", {}):
            if script not in commands:
                problems.append(f"{where} test section does not run the {script} command")
        if "extra" not in meta or "recipe-maintainers" not in (meta["extra"] or {}):
            problems.append(f"{where} has no extra/recipe-maintainers section")

    # the build script installs with pip against the host OpenMM and keeps the C++ tests for run_test.py
    with open(os.path.join(recipe_dir, "build.sh")) as handle:
        script = handle.read()
    for needed in ("pip install . ", "--no-build-isolation", "--no-deps", "OPENMM_DIR=\"${PREFIX}\"",
                   "share/${PKG_NAME}/tests"):
        if needed not in script:
            problems.append(f"recipe/build.sh lacks {needed!r}")
    with open(os.path.join(recipe_dir, "run_test.py")) as handle:
        if '"share", "openmm-cgml", "tests"' not in handle.read():
            problems.append("recipe/run_test.py does not run the C++ tests from share/openmm-cgml/tests")
    return problems


# ----------------------------------------------------------------------------- tests


def test_conda_pin_rule():
    assert conda_pin("8.6.1", "x.x", "x.x") == ">=8.6,<8.7a0"
    assert conda_pin("8.6", "x.x", "x.x") == ">=8.6,<8.7a0"
    assert conda_pin("8.6.1", "x.x.x.x.x.x", "x") == ">=8.6.1,<9a0"  # conda-build's defaults
    assert conda_pin("1.2", "x", "x.x.x") == ">=1,<1.3a0"  # max_pin longer than the version


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_recipe_renders(variant):
    meta, pins = render_recipe(os.path.join(ROOT, "recipe"), VARIANTS[variant])
    assert meta["package"]["name"] == "openmm-cgml"
    assert meta["source"]["path"] == ".."
    assert not meta["build"].get("skip")
    assert list(pins.values()) == [("openmm", "x.x", "x.x")]
    run = _conda_requirements(meta["requirements"]["run"])
    assert run["pytorch"] == ">=2.4" and run["peptidebuilder"] == ">=1.1"


def test_recipe_agrees_with_pyproject_and_cmake():
    assert recipe_problems(ROOT) == []


#: (file, text, replacement, a phrase the problem report must contain): each a change on one side only.
MUTATIONS = [
    ("pyproject.toml", 'version = "0.1.0"', 'version = "0.1.1"', "version 0.1.0 is not pyproject's 0.1.1"),
    ("recipe/meta.yaml", '{% set version = "0.1.0" %}', '{% set version = "0.2.0" %}', "version 0.2.0"),
    ("pyproject.toml", 'name = "openmm-cgml"', 'name = "openmm-cg"', "is not pyproject's 'openmm-cg'"),
    ("pyproject.toml", '"tqdm>=4.60",', '"tqdm>=4.60",\n    "rich>=13",', "lack pyproject dependency rich"),
    ("recipe/meta.yaml", "    - tqdm >=4.60\n", "", "lack pyproject dependency tqdm"),
    ("recipe/meta.yaml", "    - pyyaml >=6\n", "    - pyyaml >=6\n    - rich\n", "rich is not a pyproject dependency"),
    ("pyproject.toml", '"numpy>=1.24"', '"numpy>=1.26"', "numpy >=1.24 is not pyproject's numpy >=1.26"),
    ("recipe/meta.yaml", "scipy >=1.10", "scipy >=1.11", "scipy >=1.11 is not pyproject's"),
    ("pyproject.toml", '"PeptideBuilder>=1.1"', '"PeptideBuilder>=1.2"', "peptidebuilder >=1.1 is not pyproject's"),
    ("pyproject.toml", '    "openmm>=8.6,<8.7",\n    "numpy', '    "openmm>=8.7,<8.8",\n    "numpy',
     "is not CMake's required OpenMM"),
    ("pyproject.toml", '"swig>=4.1", "openmm>=8.6,<8.7"]', '"swig>=4.1", "openmm>=8.5,<8.7"]',
     "build-system openmm"),
    ("pyproject.toml", '"scikit-build-core>=0.10"', '"scikit-build-core>=0.11"', "scikit-build-core >=0.10"),
    ("recipe/meta.yaml", "    - openmm >=8.6,<8.7\n", "    - openmm\n", "host openmm (unpinned)"),
    ("recipe/meta.yaml", "    - openmm >=8.6,<8.7\n", "    - openmm >=8.5,<8.7\n", "host openmm"),
    ("recipe/meta.yaml", "pin_compatible('openmm', min_pin='x.x', max_pin='x.x')", "pin_compatible('openmm')",
     "run pin of openmm"),
    ("recipe/meta.yaml", "pin_compatible('openmm', min_pin='x.x', max_pin='x.x')",
     "pin_compatible('openmm', min_pin='x.x', max_pin='x')", "run pin of openmm"),
    ("recipe/meta.yaml", "    - {{ pin_compatible('openmm', min_pin='x.x', max_pin='x.x') }}\n",
     "    - openmm >=8.6,<8.7\n", "is not pin_compatible"),
    ("cmake/FindOpenMM.cmake", 'set(OPENMM_CGML_REQUIRED_OPENMM "8.6")', 'set(OPENMM_CGML_REQUIRED_OPENMM "8.7")',
     "is not CMake's required OpenMM >=8.7,<8.8"),
    ("pyproject.toml", 'requires-python = ">=3.10"', 'requires-python = ">=3.11"', "builds for Python 3.10"),
    ("recipe/meta.yaml", "skip: true  # [py<310]", "skip: true  # [py<39]", "builds for Python 3.9"),
    ("pyproject.toml", 'license = "MIT"', 'license = "BSD-3-Clause"', "is not pyproject's 'BSD-3-Clause'"),
    ("LICENSE", "MIT License", "Apache License", "is not the MIT licence"),
    ("recipe/meta.yaml", "    - {{ compiler('cuda') }}  # [cuda_compiler_version != \"None\"]\n", "",
     "no CUDA compiler"),
    ("recipe/meta.yaml", "  string: cpu_py", "  string: py", "does not say cpu"),
    ("recipe/meta.yaml", "    - openmmcgml\n    - openmmcgml.cgmlswig\n", "    - openmmcgml.cgmlswig\n",
     "does not import openmmcgml"),
    ("recipe/meta.yaml", "    - cgml --help\n    - cgml status\n", "", "does not run the cgml command"),
    ("recipe/build.sh", "--no-build-isolation", "", "lacks '--no-build-isolation'"),
]


@pytest.mark.parametrize("path, text, replacement, phrase", MUTATIONS, ids=[m[3][:40] for m in MUTATIONS])
def test_a_change_on_one_side_is_caught(tmp_path, path, text, replacement, phrase):
    for name in FILES:
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    with open(tmp_path / path) as handle:
        content = handle.read()
    assert content.count(text) == 1, f"the mutation's text is not once in {path}: update the test"
    with open(tmp_path / path, "w") as handle:
        handle.write(content.replace(text, replacement))
    problems = recipe_problems(str(tmp_path))
    assert any(phrase in problem for problem in problems), problems


def test_license_file_and_description():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    with open(os.path.join(ROOT, "LICENSE")) as handle:
        text = handle.read()
    assert project["license"] == "MIT" and text.startswith("MIT License")
    assert "openmm-cgml developers" in text
    # the description claims only what exists
    for claim in ("CGSchNet", "force-matching"):
        assert claim in project["description"]
    for missing in ("discriminator", "active learning", "bias"):
        assert missing not in project["description"].lower()
