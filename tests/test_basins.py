"""openmmcgml.analysis.basins: alanine basin labels, populations and their error bars against analytic cases."""

import doctest

import numpy as np
import pytest

from openmmcgml.analysis import basins
from openmmcgml.analysis.basins import ALANINE_BASINS, assign_basins


def test_doctests():
    assert doctest.testmod(basins, optionflags=doctest.ELLIPSIS).failed == 0


def test_assign_basins_on_a_grid_matches_the_definitions_written_out():
    # every point of a 1-degree grid (offset by half a degree) against the definitions
    phi, psi = np.meshgrid(np.arange(-179.5, 180.0, 1.0), np.arange(-179.5, 180.0, 1.0), indexing="ij")
    labels = assign_basins(phi, psi, units="degrees")
    expected = np.where(phi >= 0, "alpha_L", np.where((psi > -120) & (psi < 50), "alpha_R", "beta"))
    assert labels.shape == phi.shape
    assert (np.array(ALANINE_BASINS)[labels] == expected).all()
    # area fractions of the torus: alpha-R 170/720, beta 190/720, alpha-L 1/2
    np.testing.assert_allclose(np.bincount(labels.ravel()) / labels.size, [170 / 720, 190 / 720, 0.5])


def test_assign_basins_boundaries_wrapping_and_radians():
    phi = [-1e-9, 0.0, -60.0, -60.0, -60.0, -60.0, 300.0, -420.0]
    psi = [0.0, 0.0, -120.0, -119.999, 50.0, 49.999, 0.0, 170.0]
    # 300 deg wraps to -60 (alpha-R); -420 wraps to -60 with psi 170 (beta)
    assert assign_basins(phi, psi, units="degrees").tolist() == [0, 2, 1, 0, 1, 0, 0, 1]
    # radians: points off the boundaries (a boundary value does not round-trip through radians exactly)
    radians = assign_basins(np.radians([-60.0, -60.0, -60.0, 300.0, 10.0]), np.radians([-150.0, -30.0, 60.0, 0.0, 0.0]),
                            units="radians")
    assert radians.tolist() == [1, 0, 1, 0, 2]


@pytest.mark.parametrize("phi, psi, units, message", [
    ([0.0, np.nan], [0.0, 0.0], "degrees", "phi contains NaN"),
    ([0.0], [np.inf], "degrees", "psi contains NaN"),
    ([0.0, 1.0], [0.0], "degrees", "differ in shape"),
    ([0.0], [0.0], "deg", "units must be"),
])
def test_assign_basins_refuses_bad_input(phi, psi, units, message):
    with pytest.raises(ValueError, match=message):
        assign_basins(phi, psi, units=units)
