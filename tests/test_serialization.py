"""XmlSerializer, pickle and copy round trips of CGSchNetForce and of whole Systems."""

import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import openmm
import pytest

from openmmcgml.forces import CGSchNetForce
from plugin_helpers import make_context, make_model, make_system, plugin_energy_forces, random_positions

TYPES = [0, 2, 1, 1, 0, 2, 1, 0]
MOLECULES = [0, 0, 0, 0, 1, 1, 1, 1]
EXCLUSIONS = [(0, 1), (5, 6)]


def configured_force():
    model = make_model(seed=30, activation="tanh", rbf="expnormal", rbf_lower_cutoff=0.1, output_hidden=(9, 5))
    force = model.to_force(TYPES, MOLECULES, EXCLUSIONS, particles=[1, 2, 3, 4, 5, 6, 7, 8],
                           scale_parameter="myScale", scale=0.6)
    force.setForceGroup(3)
    force.setName("learned CG")
    return model, force


def assert_same_force(a, b):
    assert isinstance(b, CGSchNetForce)
    scalar_getters = ["getNumTypes", "getNumFeatures", "getNumFilters", "getNumRBF", "getCutoff", "getActivation",
                      "getRBFType", "getRBFCenters", "getRBFWidths", "getRBFLowerCutoff", "getEmbedding",
                      "getNumInteractionBlocks", "getNumOutputLayers", "getParticles", "getBeadTypes", "getMolecules",
                      "getNumExclusions", "getScaleParameterName", "getDefaultScale", "usesPeriodicBoundaryConditions",
                      "getForceGroup", "getName"]
    for getter in scalar_getters:
        assert getattr(a, getter)() == getattr(b, getter)(), getter
    for block in range(a.getNumInteractionBlocks()):
        for array in range(9):
            assert a.getInteractionBlockArray(block, array) == b.getInteractionBlockArray(block, array)
    for layer in range(a.getNumOutputLayers()):
        assert a.getOutputLayerWeights(layer) == b.getOutputLayerWeights(layer)
        assert a.getOutputLayerBias(layer) == b.getOutputLayerBias(layer)
    for e in range(a.getNumExclusions()):
        assert tuple(a.getExclusionParticles(e)) == tuple(b.getExclusionParticles(e))


def energy_of(force, positions):
    system = make_system(9, force)
    context = make_context(system, "Reference")
    context.setParameter("myScale", 0.6)
    return plugin_energy_forces(context, positions, groups={3})


@pytest.fixture
def positions():
    return random_positions(9, 1.2, seed=31)


def test_xml_round_trip_is_exact(positions):
    _, force = configured_force()
    xml = openmm.XmlSerializer.serialize(force)
    assert 'version="2"' in xml
    # Weights are packed arrays, not one element per value.
    assert xml.count("<") < 40
    restored = openmm.XmlSerializer.deserialize(xml)
    restored = CGSchNetForce.cast(restored)
    assert_same_force(force, restored)
    e1, f1 = energy_of(copy.copy(force), positions)
    e2, f2 = energy_of(restored, positions)
    assert e1 == e2 and np.array_equal(f1, f2)


DUPLICATES = {"pickle": lambda force: pickle.loads(pickle.dumps(force)), "copy": copy.copy, "deepcopy": copy.deepcopy}


@pytest.mark.parametrize("duplicate", list(DUPLICATES))
def test_python_copies_keep_the_type(duplicate, positions):
    _, force = configured_force()
    other = DUPLICATES[duplicate](force)
    assert type(other) is CGSchNetForce
    assert_same_force(force, other)
    other.setCutoff(0.5)  # an independent object
    assert force.getCutoff() != 0.5


def test_system_round_trips_give_identical_energies(positions):
    _, force = configured_force()
    system = make_system(9, force)
    expected = energy_of(copy.deepcopy(force), positions)
    for other in [openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system)),
                  pickle.loads(pickle.dumps(system)), copy.deepcopy(system)]:
        typed = CGSchNetForce.cast(other.getForce(0))
        assert_same_force(force, typed)
        context = make_context(other, "Reference")
        context.setParameter("myScale", 0.6)
        energy, forces = plugin_energy_forces(context, positions, groups={3})
        assert energy == expected[0] and np.array_equal(forces, expected[1])


def test_system_xml_in_a_fresh_interpreter(tmp_path, positions):
    """A System file written here loads in a new process that imports only openmm."""
    _, force = configured_force()
    system = make_system(9, force)
    (tmp_path / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    np.save(tmp_path / "positions.npy", positions)
    expected = energy_of(copy.deepcopy(force), positions)[0]
    script = textwrap.dedent(f"""
        import numpy as np, openmm
        system = openmm.XmlSerializer.deserialize(open({str(tmp_path / 'system.xml')!r}).read())
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(np.load({str(tmp_path / 'positions.npy')!r}))
        context.setParameter("myScale", 0.6)
        print(repr(context.getState(getEnergy=True, groups={{3}}).getPotentialEnergy()._value))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) == expected


def test_model_round_trip_through_force(positions):
    model, force = configured_force()
    from openmmcgml.models import CGSchNet

    rebuilt = CGSchNet.from_force(CGSchNetForce.cast(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force))))
    for (name, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert np.array_equal(a.numpy(), b.double().numpy()), name


CORRUPTIONS = {
    "truncated": lambda xml: xml[: len(xml) // 2],
    "bad base64": lambda xml: xml.replace('A1="', 'A1="#', 1),
    "wrong array length": lambda xml: xml.replace('c2="', 'c2="AAAAAAAAAAA=', 1),
    "bad integer list": lambda xml: xml.replace('BeadTypes values="0', 'BeadTypes values="x0', 1),
    "future version": lambda xml: xml.replace('version="2"', 'version="99"', 1),
    "missing attribute": lambda xml: xml.replace('numFeatures=', 'numFeaturez=', 1),
    "bead type out of range": lambda xml: xml.replace('BeadTypes values="0', 'BeadTypes values="7', 1),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_xml_raises_clear_error(corruption):
    _, force = configured_force()
    xml = CORRUPTIONS[corruption](openmm.XmlSerializer.serialize(force))
    with pytest.raises(openmm.OpenMMException) as error:
        openmm.XmlSerializer.deserialize(xml)
    message = str(error.value)
    if corruption != "truncated":  # the XML parser reports a truncated file in its own words
        assert "CGSchNetForce" in message
