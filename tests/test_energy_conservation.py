"""Constant-energy (Verlet) runs of the shipped chignolin CA model conserve energy on every platform.

One equilibrated frame (a Langevin run at the model's 340 K on the CPU platform) is integrated
for 8 ps at 2 fs with ``openmm.VerletIntegrator`` on each platform, and the drift (slope of a
line fitted to the total energy) and the RMS fluctuation about that line are checked against
bounds chosen from measurements (docs/energy-conservation.md):

- drift, 8 ps runs of one 30-DOF replica from 8 seeds: |drift| at most 9.0e-3 kJ/mol/ns/DOF on
  Reference, CPU and OpenCL mixed (double-precision integration; the seed-to-seed spread of a
  short run, no systematic drift) and 2.6e-2 on OpenCL single, where the float positions add a
  random walk to the energy (OpenMM's float integration, as the priors alone show).  Bounds:
  3e-2 (about 0.01 kT/ns/DOF at 340 K) and 1e-1.
- RMS fluctuation of the total energy: 1.1e-3 of the kinetic energy's (mean of the 8 seeds);
  bound 1e-2.

The negative controls show that the bounds catch broken forces: a pair term with an energy jump
at a cut-off, a force that the reported energy leaves out (a wrong gradient) and a learned force
5% stronger than the gradient of its energy each break a bound on the CPU platform.
"""

import os
import runpy

import numpy as np
import openmm
import pytest

from plugin_helpers import platform_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK = runpy.run_path(os.path.join(ROOT, "benchmarks", "energy_conservation.py"), run_name="energy_conservation")

TIMESTEP = 0.002  # ps
RUN_PS = 8.0
#: kJ/mol/ns/DOF; platforms that integrate in double precision, and in single precision
DRIFT_BOUND = {"double": 3e-2, "single": 1e-1}
#: RMS fluctuation of the total energy about the fitted line / RMS fluctuation of the kinetic energy
RMS_RATIO_BOUND = 1e-2

needs_opencl = pytest.mark.skipif(not platform_available("OpenCL"),
                                  reason="no OpenCL platform (no OpenCL runtime on this machine)")
needs_cuda = pytest.mark.skipif(not platform_available("CUDA"),
                                reason="no CUDA platform (no NVIDIA GPU/driver on this machine)")


@pytest.fixture(scope="module")
def chignolin():
    """The shipped model, its System (priors + learned force) and a frame equilibrated at 340 K."""
    model, hairpin = BENCHMARK["load_chignolin"]()
    positions, velocities = BENCHMARK["equilibrated_state"](model, hairpin, n_replicas=1, seed=1, time_ps=10.0)
    return model, positions, velocities


def _figures(model, positions, velocities, platform="CPU", precision=None, system=None, energy_groups=None):
    system = system or BENCHMARK["cg_system"](model)
    run = BENCHMARK["verlet_run"](system, positions, velocities, platform, precision, TIMESTEP, RUN_PS,
                                  energy_groups=energy_groups)
    assert run["stable"], f"the Verlet run on {platform} {precision or ''} blew up"
    figures = BENCHMARK["drift_figures"](run, BENCHMARK["degrees_of_freedom"](system))
    # shown with pytest -s: the figures docs/energy-conservation.md quotes
    print(f"{platform} {precision or ''}: drift {figures['drift']:+.2e} kJ/mol/ns/DOF, "
          f"RMS {figures['rms']:.2e} kJ/mol/DOF, RMS/RMS(KE) {figures['rms_ratio']:.4f}")
    return figures


def test_degrees_of_freedom_count_constraints_and_cm_motion_remover(chignolin):
    model = chignolin[0]
    system = BENCHMARK["cg_system"](model)
    assert BENCHMARK["degrees_of_freedom"](system) == 30
    system.addConstraint(0, 1, 0.38)
    system.addForce(openmm.CMMotionRemover())
    assert BENCHMARK["degrees_of_freedom"](system) == 30 - 1 - 3


@pytest.mark.parametrize("platform,precision,integration", [
    pytest.param("Reference", None, "double", id="Reference"),
    pytest.param("CPU", None, "double", id="CPU"),  # learned force in float, Verlet in double
    pytest.param("OpenCL", "single", "single", id="OpenCL-single", marks=needs_opencl),
    pytest.param("OpenCL", "mixed", "double", id="OpenCL-mixed", marks=needs_opencl),
    pytest.param("CUDA", "single", "single", id="CUDA-single", marks=needs_cuda),
    pytest.param("CUDA", "mixed", "double", id="CUDA-mixed", marks=needs_cuda),
])
def test_verlet_run_conserves_energy(chignolin, platform, precision, integration):
    figures = _figures(*chignolin, platform=platform, precision=precision)
    assert abs(figures["drift"]) < DRIFT_BOUND[integration], figures
    assert figures["rms_ratio"] < RMS_RATIO_BOUND, figures
    # a real fluctuation was measured, not a frozen system
    assert figures["rms"] > 0


def test_energy_jump_at_a_cutoff_breaks_the_bounds(chignolin):
    """A pair repulsion cut off at 0.8 nm without shifting: its energy jumps where the force has no impulse."""
    model = chignolin[0]
    system = BENCHMARK["cg_system"](model)
    truncated = openmm.CustomBondForce("2.8*(0.5/r)^6*step(0.8-r)")
    for i in range(model.n_beads):
        for j in range(i + 3, model.n_beads):
            truncated.addBond(i, j, [])
    system.addForce(truncated)
    figures = _figures(*chignolin, system=system)
    assert abs(figures["drift"]) > DRIFT_BOUND["double"], figures
    assert figures["rms_ratio"] > RMS_RATIO_BOUND, figures


def test_force_left_out_of_the_energy_breaks_the_drift_bound(chignolin):
    """A wrong gradient: 1 kJ/mol/nm along x on one bead, in a force group the energy does not count."""
    model = chignolin[0]
    system = BENCHMARK["cg_system"](model)
    push = openmm.CustomExternalForce("-1.0*x")
    push.addParticle(0, [])
    push.setForceGroup(2)
    system.addForce(push)
    figures = _figures(*chignolin, system=system, energy_groups={0, 1})
    assert abs(figures["drift"]) > 10 * DRIFT_BOUND["double"], figures


def test_learned_force_stronger_than_its_energy_breaks_the_fluctuation_bound(chignolin):
    """Forces 1.05 x the learned energy's gradient: a second copy at scale 0.05 that the energy does not count."""
    model = chignolin[0]
    system = BENCHMARK["cg_system"](model)
    extra = model.learned_force(1, scale_parameter="cgmlScaleError", scale=0.05)
    extra.setForceGroup(2)
    system.addForce(extra)
    figures = _figures(*chignolin, system=system, energy_groups={0, 1})
    assert figures["rms_ratio"] > RMS_RATIO_BOUND, figures


def test_drift_figures_of_a_known_line():
    """The fit returns the slope per ns per DOF and the RMS about the line, checked on a synthetic series."""
    t = np.linspace(0.0, 10.0, 501)  # ps
    wave = np.sin(2 * np.pi * t / 0.17)
    run = {"time": t, "total": 100.0 + 0.3 * t + 0.01 * wave, "kinetic": 40.0 + 2.0 * wave, "stable": True}
    figures = BENCHMARK["drift_figures"](run, n_dof=30)
    assert figures["drift"] == pytest.approx(300.0 / 30, rel=1e-3)  # 0.3 kJ/mol/ps = 300 kJ/mol/ns
    assert figures["rms"] * 30 == pytest.approx(0.01 / np.sqrt(2), rel=2e-2)
    assert figures["rms_ratio"] == pytest.approx(0.005, rel=2e-2)
    assert BENCHMARK["drift_figures"]({**run, "stable": False}, 30)["drift"] == np.inf
