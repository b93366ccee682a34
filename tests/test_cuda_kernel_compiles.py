"""The CUDA branch of the Common-Compute kernels, compiled with nvcc on a machine without a GPU.

OpenMM's CUDA platform compiles plugin/platforms/common/kernels/cgschnet.cc at run time with
NVRTC, behind a preamble of its own; without a GPU that never happens, so code under
``#ifndef __OPENCL_VERSION__`` and ``__CUDA_ARCH__`` would otherwise go uncompiled.  This test
takes the source and the defines that the plugin's host code passes (dumped through
OPENMM_CGML_DUMP_KERNEL_SOURCE from a Context on OpenCL), assembles the text that
CudaContext::createModule would compile (its defines, the real/mixed typedefs, the Common-Compute
preamble ``common.cu`` and ``vectorOps.cu`` taken from libOpenMMCUDA.so), compiles it to PTX with
nvcc (the compiler NVRTC packages; the toolkit here has no libnvrtc) and the PTX to machine code
with ptxas (as the driver does when OpenMM loads the module), in single, mixed and double
precision.  It then checks the compiled kernels against what the host code expects: every kernel
it creates exists, and takes arguments of the sizes it passes.
"""

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import openmm
import pytest

from plugin_helpers import make_context, make_model, make_system, platform_available

PRECISIONS = ["single", "mixed", "double"]
DUMP_VARIABLE = "OPENMM_CGML_DUMP_KERNEL_SOURCE"
TUNING = "OPENMM_CGML_COMMON_TUNING"
# CUDA 13 supports compute capability 7.5 and later; the oldest is the most restrictive target.
ARCHITECTURE = "75"
# As CudaContext compiles (its defaultOptimizationOptions).
OPTIMIZATION_OPTIONS = "--use_fast_math"

# The kernels the host creates (CommonCalcCGSchNetForceKernel::createKernels).
STAGE_KERNELS = ["countActivePairs", "compactActivePairs", "computeFilters", "forwardBlock", "forwardLastBlock",
                 "backwardBlock", "backwardFirstBlock"]
SINGLE_LAUNCH_KERNEL = "runAllStages"


def argument_kinds():
    """The arguments the host passes to every kernel, in order (createKernels): 26 arrays,
    numDerivs, derivIndex, scale, includeForces, the five box vectors, block, barrierBase."""
    return ["pointer"] * 26 + ["int", "int", "real", "int"] + ["real4"] * 5 + ["int", "int"]


def find_openmm_cuda_library():
    candidates = [os.environ.get("OPENMM_PLUGIN_DIR"),
                  os.path.join(openmm.version.openmm_library_path, "plugins"),
                  openmm.Platform.getDefaultPluginsDirectory()]
    for directory in candidates:
        if directory and os.path.isfile(os.path.join(directory, "libOpenMMCUDA.so")):
            return os.path.join(directory, "libOpenMMCUDA.so")
    return None


NVCC = shutil.which("nvcc")
CUDA_LIBRARY = find_openmm_cuda_library()
HOST_PLATFORM = next((name for name in ("OpenCL", "CUDA") if platform_available(name)), None)

needs_host_platform = pytest.mark.skipif(HOST_PLATFORM is None, reason="no OpenCL or CUDA platform to run the plugin's host code")
needs_cuda_library = pytest.mark.skipif(CUDA_LIBRARY is None, reason="OpenMM's CUDA platform library libOpenMMCUDA.so is "
                                        "not installed (pip install openmm-cuda-13 --no-deps provides it)")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit's compiler) is not on PATH")


def needs_cuda_toolchain(test):
    return needs_nvcc(needs_cuda_library(needs_host_platform(test)))


# ------------------------------------------------------------------------------------------------
# What CudaContext puts around a program
# ------------------------------------------------------------------------------------------------

def embedded_string(library, marker):
    """The NUL-terminated string of the library that contains marker (a kernel source that OpenMM
    embeds as one C string)."""
    start = library.find(marker)
    if start < 0 or library.find(marker, start + 1) >= 0:
        pytest.fail(f"{marker!r} is not exactly once in {CUDA_LIBRARY}: OpenMM's embedded CUDA sources changed, "
                    "update this test's extraction")
    begin = library.rfind(b"\0", 0, start) + 1
    return library[begin:library.find(b"\0", start)].decode()


RECTANGULAR_DELTA = ("{delta.x -= floor(delta.x*invPeriodicBoxSize.x+0.5f)*periodicBoxSize.x; \\\n"
                     "delta.y -= floor(delta.y*invPeriodicBoxSize.y+0.5f)*periodicBoxSize.y; \\\n"
                     "delta.z -= floor(delta.z*invPeriodicBoxSize.z+0.5f)*periodicBoxSize.z;}")
TRICLINIC_DELTA = ("{real scale3 = floor(delta.z*invPeriodicBoxSize.z+0.5f); \\\n"
                   "delta.x -= scale3*periodicBoxVecZ.x; \\\n"
                   "delta.y -= scale3*periodicBoxVecZ.y; \\\n"
                   "delta.z -= scale3*periodicBoxVecZ.z; \\\n"
                   "real scale2 = floor(delta.y*invPeriodicBoxSize.y+0.5f); \\\n"
                   "delta.x -= scale2*periodicBoxVecY.x; \\\n"
                   "delta.y -= scale2*periodicBoxVecY.y; \\\n"
                   "real scale1 = floor(delta.x*invPeriodicBoxSize.x+0.5f); \\\n"
                   "delta.x -= scale1*periodicBoxVecX.x;}")


def context_defines(precision, triclinic):
    """The defines CudaContext sets for every program (the ones the kernels can use: warp
    functions, precision, math functions, periodic displacement)."""
    double, mixed = precision == "double", precision != "single"
    real, accumulator = ("double" if double else "float"), ("double" if mixed else "float")
    defines = {"SYNC_WARPS": "__syncwarp();",
               "SHFL(var, srcLane)": "__shfl_sync(0xffffffff, var, srcLane);",
               "BALLOT(var)": "__ballot_sync(0xffffffff, var);",
               "RECIP": "1.0/" if double else "1.0f/",
               "APPLY_PERIODIC_TO_DELTA(delta)": TRICLINIC_DELTA if triclinic else RECTANGULAR_DELTA}
    if double:
        defines["USE_DOUBLE_PRECISION"] = "1"
    elif mixed:
        defines["USE_MIXED_PRECISION"] = "1"
    for n in (2, 3, 4):
        defines[f"make_real{n}"] = f"make_{real}{n}"
        defines[f"make_mixed{n}"] = f"make_{accumulator}{n}"
    for function in ["sqrt", "rsqrt", "exp", "log", "pow", "cos", "sin", "tan", "acos", "asin", "atan", "erf", "erfc",
                     "fma", "fabs"]:
        defines[function.upper()] = function if double else function + "f"
    return defines


def type_definitions(precision):
    real = "double" if precision == "double" else "float"
    accumulator = "float" if precision == "single" else "double"
    lines = [f"typedef {real}{n} real{n};\n" for n in ("", "2", "3", "4")]
    lines += [f"typedef {accumulator}{n} mixed{n};\n" for n in ("", "2", "3", "4")]
    return lines + ["typedef unsigned int tileflags;\n"]


def assemble(precision, plugin_defines, source, triclinic, library, file_name="cgschnet.cc"):
    """The text CudaContext::compileProgram compiles: its defines (those the program does not set
    itself), typedefs, common.cu, the program's defines, then vectorOps.cu and the program."""
    common = embedded_string(library, b'#define KERNEL extern "C" __global__')
    vector_ops = embedded_string(library, b"Versions of make_x() that take a single value")
    parts = [f"// Compilation Options: {OPTIMIZATION_OPTIONS}\n\n"]
    for name, value in sorted(context_defines(precision, triclinic).items()):
        if name not in plugin_defines:
            parts.append(f"#define {name} {value}\n")
    parts.append("\n")
    parts += type_definitions(precision)
    parts.append(common + "\n")
    for name, value in sorted(plugin_defines.items()):
        parts.append(f"#define {name} {value}\n" if value else f"#define {name}\n")
    parts.append("\n")
    # The #line directive only makes nvcc report errors at lines of the plugin's own file.
    parts.append(vector_ops + f'#line 1 "plugin/platforms/common/kernels/{file_name}"\n' + source + "\n")
    return "".join(parts)


# ------------------------------------------------------------------------------------------------
# The host code's defines for forces that take every branch of the source
# ------------------------------------------------------------------------------------------------

def chain(n_molecules, per_molecule):
    return [(m * per_molecule + i, m * per_molecule + i + 1) for m in range(n_molecules) for i in range(per_molecule - 1)]


TRICLINIC_BOX = [[3.0, 0, 0], [0.4, 3.1, 0], [-0.3, 0.5, 2.9]]


def build_case(name):
    """(force, number of particles, box, tuning) of each case; the tuning asks for the launch mode
    the CUDA platform picks by default for that size (one launch with grid barriers for small work)."""
    if name == "small-single-launch":
        model = make_model(seed=1, activation="silu")
        force = model.to_force([i % 3 for i in range(20)], [i // 10 for i in range(20)], chain(2, 10))
        return force, 20, None, "singleLaunch=1,groups=4"
    if name == "many-pairs-tabulated-triclinic":
        # 130 beads in one molecule: 8385 candidate pairs, more than one compaction chunk (8192).
        model = make_model(seed=2, activation="tanh", rbf="expnormal", rbf_lower_cutoff=0.05)
        force = model.to_force([i % 3 for i in range(130)], periodic=True)
        force.setFilterTabulationPoints(100)
        return force, 130, TRICLINIC_BOX, "singleLaunch=1,groups=4"
    if name == "wide-separate-launches":
        # Widths beyond the work-group size and the largest tiles fill the local memory; one launch
        # per stage.
        model = make_model(seed=3, activation="ssp", n_features=130, n_filters=134, n_rbf=7, output_hidden=(131, 5))
        return model.to_force([i % 3 for i in range(12)]), 12, None, "singleLaunch=0,tileBeads=8,tilePairs=16"
    raise ValueError(name)


# The precisions each case is compiled in: every precision in the basic case; mixed (which differs
# from single only in the energy accumulator) and the stricter double in one other case each.
CASE_PRECISIONS = {"small-single-launch": ["single", "mixed", "double"],
                   "many-pairs-tabulated-triclinic": ["mixed", "double"],
                   "wide-separate-launches": ["single", "double"]}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """{(case, precision): (defines, source, triclinic)} from the plugin's host code."""
    root = tmp_path_factory.mktemp("cgschnet-dumps")
    result = {}
    with pytest.MonkeyPatch.context() as patch:
        for case, precisions in CASE_PRECISIONS.items():
            for precision in precisions:
                directory = root / f"{case}-{precision}"
                directory.mkdir()
                force, n_particles, box, tuning = build_case(case)
                patch.setenv(DUMP_VARIABLE, str(directory))
                patch.setenv(TUNING, tuning)
                # Creating the Context compiles the kernels (and dumps them); nothing is evaluated.
                context = make_context(make_system(n_particles, force, box), HOST_PLATFORM, {"Precision": precision})
                del context
                descriptions = sorted(directory.glob("cgschnet-*.json"))
                assert len(descriptions) == 1, (
                    f"{case}, {precision}: expected one dumped kernel source in {directory}, found {len(descriptions)} "
                    "(does the installed plugin have the OPENMM_CGML_DUMP_KERNEL_SOURCE hook?)")
                description = json.loads(descriptions[0].read_text())
                assert description["precision"] == precision
                source = (directory / description["source"]).read_text()
                result[case, precision] = (description["defines"], source, box is not None)
    return result


# ------------------------------------------------------------------------------------------------
# Compiling
# ------------------------------------------------------------------------------------------------

def compile_text(directory, name, text):
    """nvcc to PTX (what NVRTC does in CudaContext), then ptxas to machine code (what the driver
    does when it loads the module).  Returns the logs, and the PTX where it was made."""
    source, ptx, cubin = directory / f"{name}.cu", directory / f"{name}.ptx", directory / f"{name}.cubin"
    source.write_text(text)
    result = {"source": source, "ptx": None, "ptxas_log": ""}
    nvcc = subprocess.run([NVCC, "--ptx", f"-arch=compute_{ARCHITECTURE}", OPTIMIZATION_OPTIONS, "-o", str(ptx), str(source)],
                          capture_output=True, text=True)
    result["nvcc_returncode"], result["nvcc_log"] = nvcc.returncode, nvcc.stdout + nvcc.stderr
    if nvcc.returncode != 0:
        return result
    result["ptx"] = ptx.read_text()
    ptxas = subprocess.run([NVCC, "-cubin", f"-arch=sm_{ARCHITECTURE}", "-Xptxas", "-v", "-o", str(cubin), str(ptx)],
                           capture_output=True, text=True)
    result["ptxas_returncode"], result["ptxas_log"] = ptxas.returncode, ptxas.stdout + ptxas.stderr
    return result


@pytest.fixture(scope="module")
def compiled(dumps, tmp_path_factory):
    """{(case, precision): compile_text's result}, compiled in parallel."""
    directory = tmp_path_factory.mktemp("cgschnet-cuda")
    with open(CUDA_LIBRARY, "rb") as stream:
        library = stream.read()
    texts = {key: assemble(key[1], defines, source, triclinic, library) for key, (defines, source, triclinic) in dumps.items()}
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        futures = {key: pool.submit(compile_text, directory, f"{key[0]}-{key[1]}", text) for key, text in texts.items()}
        return {key: future.result() for key, future in futures.items()}


CASE_PARAMETERS = [pytest.param(case, precision, id=f"{case}-{precision}")
                   for case, precisions in CASE_PRECISIONS.items() for precision in precisions]


@needs_cuda_toolchain
@pytest.mark.parametrize("case,precision", CASE_PARAMETERS)
def test_cuda_kernels_compile(compiled, case, precision):
    """nvcc and ptxas accept the program, and nvcc warns about nothing in the plugin's source."""
    result = compiled[case, precision]
    assert result["nvcc_returncode"] == 0, (
        f"nvcc could not compile the kernels ({case}, {precision} precision; assembled source {result['source']}):\n"
        + result["nvcc_log"])
    warnings = [line for line in result["nvcc_log"].splitlines() if re.search(r"cgschnet\.cc\(\d+\): warning", line)]
    assert not warnings, "nvcc warns about the kernel source:\n" + "\n".join(warnings)
    assert result["ptxas_returncode"] == 0, (
        f"ptxas could not compile the PTX ({case}, {precision} precision):\n" + result["ptxas_log"])


def entry_parameters(ptx):
    """{kernel name: [kind of each parameter]} of the PTX's entry points."""
    entries = {}
    for name, parameters in re.findall(r"\.entry\s+(\w+)\s*\((.*?)\)", ptx, flags=re.S):
        kinds = []
        for parameter in parameters.split(","):
            parameter = parameter.strip()
            array = re.search(r"\.b8\s+\w+\[(\d+)\]", parameter)
            scalar = re.search(r"\.param\s+\.([usfb])(\d+)\s", parameter + " ")
            if array:
                kinds.append(("vector", int(array.group(1))))
            elif scalar:
                kind = {"u": "integer", "s": "integer", "b": "integer", "f": "float"}[scalar.group(1)]
                kinds.append((kind, int(scalar.group(2)) // 8))
            else:
                kinds.append(("unknown", parameter))
        entries[name] = kinds
    return entries


@needs_cuda_toolchain
@pytest.mark.parametrize("case,precision", CASE_PARAMETERS)
def test_compiled_kernels_take_the_host_arguments(compiled, dumps, case, precision):
    """Every kernel the host creates exists under its name, and its parameters have the sizes and
    kinds of the values the host passes (CUDA reads each argument with the size the kernel
    declares, so a mismatch would silently read wrong values)."""
    result = compiled[case, precision]
    if result["ptx"] is None:
        pytest.fail("the kernels did not compile (see test_cuda_kernels_compile)")
    entries = entry_parameters(result["ptx"])
    expected_names = set(STAGE_KERNELS)
    if "CGML_GRID_SYNC" in dumps[case, precision][0]:
        expected_names.add(SINGLE_LAUNCH_KERNEL)
    assert set(entries) == expected_names
    real_size = 8 if precision == "double" else 4
    expected = {"pointer": ("integer", 8), "int": ("integer", 4), "real": ("float", real_size),
                "real4": ("vector", 4 * real_size)}
    for name, kinds in entries.items():
        assert kinds == [expected[kind] for kind in argument_kinds()], name


@needs_host_platform
def test_dumped_source_is_the_repository_kernel(dumps):
    """The installed plugin compiles the kernel source of this checkout (else the compile tests
    checked an older source: reinstall)."""
    path = os.path.join(os.path.dirname(__file__), "..", "plugin", "platforms", "common", "kernels", "cgschnet.cc")
    if not os.path.isfile(path):
        pytest.skip("not run from a source checkout")
    with open(path) as stream:
        repository = stream.read()
    stale = [key for key, (_, source, _) in dumps.items() if source != repository]
    if stale:
        pytest.fail(f"the installed plugin's kernel source differs from {os.path.normpath(path)} ({len(stale)} of "
                    f"{len(dumps)} dumps): reinstall the plugin", pytrace=False)


@needs_host_platform
def test_dumps_take_the_intended_branches(dumps):
    """The cases between them cover every conditional part of the source."""
    for (case, precision), (defines, _, _) in dumps.items():
        if case == "small-single-launch":
            assert "CGML_GRID_SYNC" in defines and "ACT_SILU" in defines and int(defines["NUM_CHUNKS"]) == 1
        elif case == "many-pairs-tabulated-triclinic":
            assert "CGML_GRID_SYNC" in defines and int(defines["NUM_CHUNKS"]) > 1
            assert {"FILTER_TABLE", "USE_PERIODIC", "RBF_EXPNORMAL", "ACT_TANH"} <= set(defines)
        else:
            assert "CGML_GRID_SYNC" not in defines and "ACT_SHIFTED_SOFTPLUS" in defines
            # Most of the 40 kB of local memory the host allows a work group (ptxas refuses > 48 kB).
            assert int(defines["SCRATCH_SIZE"]) * (8 if precision == "double" else 4) > 20 * 1024


@needs_cuda_library
def test_written_preamble_is_in_openmm_cuda_library():
    """Every define and typedef this test writes in CudaContext's place is text of the installed
    libOpenMMCUDA.so (so a change there shows up here)."""
    with open(CUDA_LIBRARY, "rb") as stream:
        library = stream.read()
    texts = set()
    for precision in PRECISIONS:
        texts.update(type_definitions(precision))
        for triclinic in (False, True):
            for name, value in context_defines(precision, triclinic).items():
                texts.update([name, value])
    missing = sorted(text for text in texts if text.encode() not in library)
    assert not missing, f"not in {CUDA_LIBRARY}: {missing}"


@needs_host_platform
def test_dump_into_a_missing_directory_is_refused(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-directory"
    monkeypatch.setenv(DUMP_VARIABLE, str(missing))
    force, n_particles, box, _ = build_case("small-single-launch")
    with pytest.raises(openmm.OpenMMException, match=f"{DUMP_VARIABLE}={re.escape(str(missing))}"):
        make_context(make_system(n_particles, force, box), HOST_PLATFORM, {"Precision": "single"})


# ------------------------------------------------------------------------------------------------
# The DiscriminatorBiasForce's kernel (kernels/discriminator.cc)
# ------------------------------------------------------------------------------------------------

#: The arguments CommonCalcDiscriminatorBiasForceKernel passes: 10 arrays, numDerivs, derivIndex,
#: scale, kT, includeForces, the five box vectors.
BIAS_ARGUMENTS = ["pointer"] * 10 + ["int", "int", "real", "real", "int"] + ["real4"] * 5
BIAS_CASES = [pytest.param(precision, periodic, id=f"{precision}-{'periodic' if periodic else 'free'}")
              for precision, periodic in (("single", False), ("mixed", True), ("double", True), ("double", False))]


def bias_force(periodic):
    import torch

    from openmmcgml.models import BiasFeatures, Discriminator

    torch.manual_seed(0)
    features = BiasFeatures([[0, 3], [1, 4]], [[0, 1, 2], [2, 3, 4]], [[0, 1, 2, 3], [1, 2, 3, 4]])
    model = Discriminator(features, hidden=[70, 9], activation="ssp", clamp=2.0)  # wider than a work group
    model.add_network([5], "tanh", 0.0)
    model.add_network([4, 4], "silu", 1.0)
    return model.to_force(molecules=[list(range(5 * m, 5 * m + 5)) for m in range(3)], periodic=periodic)


@pytest.fixture(scope="module")
def bias_compiled(tmp_path_factory):
    """{(precision, periodic): (compile_text's result, defines)} of the discriminator kernel."""
    root = tmp_path_factory.mktemp("discriminator-dumps")
    with open(CUDA_LIBRARY, "rb") as stream:
        library = stream.read()
    result = {}
    with pytest.MonkeyPatch.context() as patch:
        for parameters in BIAS_CASES:
            precision, periodic = parameters.values
            directory = root / f"{precision}-{periodic}"
            directory.mkdir()
            patch.setenv(DUMP_VARIABLE, str(directory))
            box = TRICLINIC_BOX if periodic else None
            context = make_context(make_system(15, bias_force(periodic), box), HOST_PLATFORM, {"Precision": precision})
            del context
            descriptions = sorted(directory.glob("discriminator-*.json"))
            assert len(descriptions) == 1, f"expected one dumped discriminator kernel in {directory}"
            description = json.loads(descriptions[0].read_text())
            source = (directory / description["source"]).read_text()
            text = assemble(precision, description["defines"], source, periodic, library, "discriminator.cc")
            result[precision, periodic] = (compile_text(directory, "discriminator", text), description["defines"], source)
    return result


@needs_cuda_toolchain
@pytest.mark.parametrize("precision,periodic", BIAS_CASES)
def test_discriminator_kernel_compiles_and_takes_the_host_arguments(bias_compiled, precision, periodic):
    result, defines, _ = bias_compiled[precision, periodic]
    assert result["nvcc_returncode"] == 0, "nvcc could not compile discriminator.cc:\n" + result["nvcc_log"]
    warnings = [line for line in result["nvcc_log"].splitlines() if re.search(r"discriminator\.cc\(\d+\): warning", line)]
    assert not warnings, "nvcc warns about the kernel source:\n" + "\n".join(warnings)
    assert result["ptxas_returncode"] == 0, "ptxas could not compile the PTX:\n" + result["ptxas_log"]
    assert ("USE_PERIODIC" in defines) == periodic
    entries = entry_parameters(result["ptx"])
    assert set(entries) == {"computeDiscriminatorBias"}
    real_size = 8 if precision == "double" else 4
    expected = {"pointer": ("integer", 8), "int": ("integer", 4), "real": ("float", real_size),
                "real4": ("vector", 4 * real_size)}
    assert entries["computeDiscriminatorBias"] == [expected[kind] for kind in BIAS_ARGUMENTS]


@needs_cuda_toolchain
def test_dumped_discriminator_source_is_the_repository_kernel(bias_compiled):
    path = os.path.join(os.path.dirname(__file__), "..", "plugin", "platforms", "common", "kernels", "discriminator.cc")
    if not os.path.isfile(path):
        pytest.skip("not run from a source checkout")
    with open(path) as stream:
        repository = stream.read()
    assert all(source == repository for _, _, source in bias_compiled.values()), "reinstall the plugin"
