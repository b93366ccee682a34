"""The opt-in tabulated-filter mode of CGSchNetForce (setFilterTabulationPoints).

An independent torch reference interpolates the model's own filters (values and autograd derivatives
at the grid nodes) with cubic Hermite splines, so each platform's tabulated mode is checked against
the function it claims to compute; separately, the tabulated mode is compared with the exact
model, its error is checked against the a-priori bound and shown to shrink as h^4.
"""

import copy
import math
import re

import numpy as np
import openmm
import pytest
import torch

from openmmcgml.forces import CGSchNetForce
from plugin_helpers import (
    make_context,
    make_model,
    make_system,
    platform_available,
    plugin_energy_forces,
    random_positions,
    relative_error,
    torch_energy_forces,
)

# torch.func's first use scripts a helper with torch.jit, which torch marks deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")

OPENCL_SKIP = pytest.mark.skipif(not platform_available("OpenCL"), reason="no OpenCL platform (no OpenCL runtime on this machine)")

# (platform, properties, tolerance of the plugin against the torch reference of the same table)
TABULATED_PLATFORMS = [
    pytest.param("Reference", {}, 1e-9, id="Reference"),
    pytest.param("CPU", {}, 1e-4, id="CPU"),
    # OpenMM's fixed-point force buffer resolves 2^-32 kJ/mol/nm: with forces of 0.01-0.3 that
    # alone is a relative error of a few 1e-9.
    pytest.param("OpenCL", {"Precision": "double"}, 1e-8, id="OpenCL-double", marks=[OPENCL_SKIP]),
    pytest.param("OpenCL", {"Precision": "single"}, 1e-4, id="OpenCL-single", marks=[OPENCL_SKIP]),
]


def chain_exclusions(n_molecules, per_molecule):
    return [(m * per_molecule + i, m * per_molecule + i + 1) for m in range(n_molecules) for i in range(per_molecule - 1)]


def setup(seed=0, n_molecules=2, per_molecule=8, **options):
    model = make_model(seed=seed, **options)
    n = n_molecules * per_molecule
    positions = random_positions(n, 1.4, seed=seed + 1, min_distance=0.1)
    types = [(5 * i + 2) % model.n_types for i in range(n)]
    molecules = [i // per_molecule for i in range(n)]
    return model, positions, types, molecules, chain_exclusions(n_molecules, per_molecule)


# ----------------------------------------------------------------------------- torch reference

def hermite_tables(model, n_points):
    """Per block: coefficients (n_intervals, 4, NF) of the cubic Hermite interpolant of the filter
    w0(r) = act(e(r) A1 + a1) A2 + a2 on n_points nodes over [0, cutoff], from torch autograd."""
    intervals = n_points - 1
    h = model.cutoff / intervals
    nodes = torch.arange(n_points, dtype=torch.float64) * model.cutoff / intervals
    tables = []
    for block in model.interactions:
        def w0(r, block=block):
            return block.filter(model.rbf(r))
        # each row of w0 depends on its own r only, so the forward-mode product with ones is dw0/dr
        values, derivatives = torch.func.jvp(w0, (nodes,), (torch.ones_like(nodes),))
        w, d = values.detach(), derivatives.detach() * h
        c0, c1 = w[:-1], d[:-1]
        c2 = 3 * (w[1:] - w[:-1]) - 2 * d[:-1] - d[1:]
        c3 = 2 * (w[:-1] - w[1:]) + d[:-1] + d[1:]
        tables.append(torch.stack([c0, c1, c2, c3], dim=1))
    return tables, h


def tabulated_energy_forces(model, n_points, positions, types, molecules, exclusions):
    """Energy and forces (autograd) of the model with every filter replaced by its table."""
    from openmmcgml.models import CGTopology

    tables, h = hermite_tables(model, n_points)
    topology = CGTopology(types, molecules, exclusions)
    pairs = torch.tensor(topology.pairs)
    x = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
    delta = x[pairs[:, 1]] - x[pairs[:, 0]]
    r2 = (delta * delta).sum(-1)
    inside = r2 < model.cutoff**2
    i, j = pairs[inside, 0], pairs[inside, 1]
    r = torch.sqrt(r2[inside])
    cutoff_value = 0.5 * (torch.cos(r * math.pi / model.cutoff) + 1.0)
    s = r / h
    n = torch.clamp(torch.floor(s.detach()).long(), 0, n_points - 2)
    t = (s - n).unsqueeze(-1)
    h_features = model.embedding(torch.tensor(topology.bead_types))
    for block, table in zip(model.interactions, tables):
        c = table[n]
        w = (c[:, 0] + t * (c[:, 1] + t * (c[:, 2] + t * c[:, 3]))) * cutoff_value.unsqueeze(-1)
        hb = block.message(h_features)
        m = torch.zeros_like(hb).index_add(0, i, hb[j] * w).index_add(0, j, hb[i] * w)
        h_features = h_features + block.update(m)
    energy = model.output(h_features).sum()
    (gradient,) = torch.autograd.grad(energy, x)
    return energy.item(), -gradient.numpy()


def plugin_result(model, n_points, positions, types, molecules, exclusions, platform="Reference", properties=None):
    force = model.to_force(types, molecules, exclusions, filter_tabulation_points=n_points)
    context = make_context(make_system(len(positions), force), platform, properties)
    return plugin_energy_forces(context, positions)


# ------------------------------------------------------------------------------ the tests

@pytest.mark.parametrize("platform,properties,tolerance", TABULATED_PLATFORMS)
@pytest.mark.parametrize("n_points", [9, 200])
def test_platform_matches_torch_reference_of_the_same_table(platform, properties, tolerance, n_points):
    """A coarse table (9 points) makes the tabulated function far from the exact one, so only a
    kernel that really interpolates this table can pass; 200 points is a practical setting."""
    model, positions, types, molecules, exclusions = setup(activation="silu", rbf="expnormal", rbf_lower_cutoff=0.05)
    expected_energy, expected_forces = tabulated_energy_forces(model, n_points, positions, types, molecules, exclusions)
    exact_energy, exact_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    if n_points == 9:
        assert relative_error(expected_forces, exact_forces) > 1e-3  # the coarse table is visibly different
    energy, forces = plugin_result(model, n_points, positions, types, molecules, exclusions, platform, properties)
    assert abs(energy - expected_energy) <= tolerance * max(abs(expected_energy), 1.0)
    assert relative_error(forces, expected_forces) < tolerance


def fourth_derivative_max(model, n_grid=3001):
    """max over blocks, channels and a fine grid on [0, cutoff] of |d^4 w0 / dr^4| (autograd)."""
    grid = torch.linspace(0.0, model.cutoff, n_grid, dtype=torch.float64)
    largest = 0.0
    for block in model.interactions:
        def w0(r, block=block):
            return block.filter(model.rbf(r.reshape(1)))[0]
        d4 = torch.func.jacfwd(torch.func.jacfwd(torch.func.jacfwd(torch.func.jacfwd(w0))))
        values = torch.func.vmap(d4)(grid)
        largest = max(largest, float(values.detach().abs().max()))
    return largest


def test_measured_error_respects_the_a_priori_bound():
    model = make_model(seed=3, activation="ssp")
    fourth = fourth_derivative_max(model)
    for n_points in (17, 65):
        h = model.cutoff / (n_points - 1)
        measured = model.filter_tabulation_error(n_points)
        bound = h**4 / 384 * fourth
        derivative_bound = math.sqrt(3) * h**3 / 216 * fourth
        # |f_c| <= 1, so W = w0 f_c has w0's bound; dW/dr adds |w0 - p| |f_c'| <= bound * pi / (2 r_c).
        assert 0 < measured["max_error"] <= 1.01 * bound
        assert measured["max_derivative_error"] <= 1.01 * (derivative_bound + bound * math.pi / (2 * model.cutoff))
        # the bound is not vacuous: the measured error is a sizeable fraction of it
        assert measured["max_error"] > 0.05 * bound
        assert measured["max_filter"] > 0 and measured["max_filter_derivative"] > 0


def test_error_shrinks_as_h_to_the_fourth():
    """Halving h divides the filter error by about 16 (h^4) and its derivative's by about 8 (h^3);
    the force error, dominated by the derivative, by more than 5.  The grids start where the
    spacing is already small against the widths of the radial basis (the asymptotic regime)."""
    model, positions, types, molecules, exclusions = setup(seed=4, activation="tanh")
    exact_energy, exact_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    points = [65, 129, 257, 513]
    filter_errors, derivative_errors, energy_errors, force_errors = [], [], [], []
    for n_points in points:
        measured = model.filter_tabulation_error(n_points)
        filter_errors.append(measured["max_error"])
        derivative_errors.append(measured["max_derivative_error"])
        energy, forces = plugin_result(model, n_points, positions, types, molecules, exclusions)
        energy_errors.append(abs(energy - exact_energy))
        force_errors.append(relative_error(forces, exact_forces))
    for k in range(len(points) - 1):
        assert 14 < filter_errors[k] / filter_errors[k + 1] < 18
        assert 7 < derivative_errors[k] / derivative_errors[k + 1] < 9
        assert force_errors[k] / force_errors[k + 1] > 5
    # energy errors are sums of signed contributions, so only their overall decrease is checked
    assert energy_errors[0] / energy_errors[-1] > 100
    # and the finest table is an excellent approximation
    assert force_errors[-1] < 1e-5 and energy_errors[-1] < 1e-7 * max(abs(exact_energy), 1.0)


@pytest.mark.parametrize("platform,tolerance", [("Reference", 1e-6), ("CPU", 1e-4)])
def test_default_size_table_is_close_to_exact(platform, tolerance):
    """With 1000 points the tabulated mode agrees with the exact float64 model to the platform's
    usual tolerance."""
    model, positions, types, molecules, exclusions = setup(seed=5, n_rbf=20, cutoff=1.2)
    exact_energy, exact_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    energy, forces = plugin_result(model, 1000, positions, types, molecules, exclusions, platform)
    assert abs(energy - exact_energy) <= tolerance * max(abs(exact_energy), 1.0)
    assert relative_error(forces, exact_forces) < tolerance


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_update_parameters_rebuilds_the_table(platform):
    model, positions, types, molecules, exclusions = setup(seed=6)
    force = model.to_force(types, molecules, exclusions, filter_tabulation_points=50)
    context = make_context(make_system(len(positions), force), platform)
    before = plugin_energy_forces(context, positions)[0]
    trained = make_model(seed=7, cutoff=0.9)
    trained.update_force(force)
    assert force.getFilterTabulationPoints() == 50
    force.updateParametersInContext(context)
    energy, forces = plugin_energy_forces(context, positions)
    expected_energy, expected_forces = tabulated_energy_forces(trained, 50, positions, types, molecules, exclusions)
    assert abs(energy - before) > 1e-3
    tolerance = 1e-9 if platform == "Reference" else 1e-4
    assert energy == pytest.approx(expected_energy, rel=tolerance, abs=tolerance)
    assert relative_error(forces, expected_forces) < tolerance
    force.setFilterTabulationPoints(100)
    with pytest.raises(openmm.OpenMMException, match="filter tabulation points changed"):
        force.updateParametersInContext(context)
    force.setFilterTabulationPoints(0)
    with pytest.raises(openmm.OpenMMException, match="filter tabulation points changed"):
        force.updateParametersInContext(context)


def test_setting_and_validation():
    model = make_model()
    force = model.to_force([0, 1, 2])
    assert force.getFilterTabulationPoints() == 0
    force.setFilterTabulationPoints(2)
    assert force.getFilterTabulationPoints() == 2
    for bad in (1, -3):
        with pytest.raises(openmm.OpenMMException, match="tabulation points"):
            force.setFilterTabulationPoints(bad)
    assert force.getFilterTabulationPoints() == 2
    with pytest.raises(openmm.OpenMMException, match="at least 2 points"):
        force.computeFilterTabulationError(1)
    assert model.to_force([0], filter_tabulation_points=300).getFilterTabulationPoints() == 300
    error, derivative_error, largest, largest_derivative = force.computeFilterTabulationError(100)
    assert model.filter_tabulation_error(100) == {"max_error": error, "max_derivative_error": derivative_error,
                                                  "max_filter": largest, "max_filter_derivative": largest_derivative}


def test_serialization_round_trip_keeps_the_setting():
    model, positions, types, molecules, exclusions = setup(seed=8)
    force = model.to_force(types, molecules, exclusions, filter_tabulation_points=123)
    xml = openmm.XmlSerializer.serialize(force)
    assert 'version="3"' in xml and 'filterTabulationPoints="123"' in xml
    restored = CGSchNetForce.cast(openmm.XmlSerializer.deserialize(xml))
    assert restored.getFilterTabulationPoints() == 123
    for other in (copy.deepcopy(force), restored):
        assert other.getFilterTabulationPoints() == 123
    e1, f1 = plugin_energy_forces(make_context(make_system(len(positions), copy.copy(force)), "Reference"), positions)
    e2, f2 = plugin_energy_forces(make_context(make_system(len(positions), restored), "Reference"), positions)
    assert e1 == e2 and np.array_equal(f1, f2)


def test_version_1_xml_loads_with_exact_filters():
    model, positions, types, molecules, exclusions = setup(seed=9)
    xml = openmm.XmlSerializer.serialize(model.to_force(types, molecules, exclusions, filter_tabulation_points=40))
    # A file written before the tabulated mode existed: version 1, no filterTabulationPoints.
    old = re.sub(r' filterTabulationPoints="\d+"', "", xml.replace('version="3"', 'version="1"', 1))
    assert "filterTabulationPoints" not in old and 'version="1"' in old
    restored = CGSchNetForce.cast(openmm.XmlSerializer.deserialize(old))
    assert restored.getFilterTabulationPoints() == 0
    energy, forces = plugin_energy_forces(make_context(make_system(len(positions), restored), "Reference"), positions)
    exact_energy, exact_forces = torch_energy_forces(model, positions, types, molecules, exclusions)
    assert energy == pytest.approx(exact_energy, rel=1e-12)
    assert relative_error(forces, exact_forces) < 1e-10
