"""XmlSerializer, pickle and copy round trips of CGSchNetForce and of whole Systems."""

import base64
import copy
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
import zlib

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
    assert 'version="3"' in xml
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
    "future version": lambda xml: xml.replace('version="3"', 'version="99"', 1),
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


# ------------------------------------------------------------------------------------------------
# Format version 3: a CRC-32 beside every packed array, and sizes checked before allocation
# ------------------------------------------------------------------------------------------------

BLOCK_KEYS = ["A1", "a1", "A2", "a2", "B", "C1", "c1", "C2", "c2"]
BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def packed_arrays(root, force):
    """(element, attribute, the name the plugin gives the array, the force's values) for every
    packed array of a serialized force."""
    rbf = root.find("RBF")
    found = [(rbf, "centers", "RBF centers", force.getRBFCenters()), (rbf, "widths", "RBF widths", force.getRBFWidths()),
             (root.find("Embedding"), "values", "embedding", force.getEmbedding())]
    for b, block in enumerate(root.find("InteractionBlocks")):
        for a, key in enumerate(BLOCK_KEYS):
            found.append((block, key, f"interaction block {b} {key}", force.getInteractionBlockArray(b, a)))
    for index, layer in enumerate(root.find("OutputLayers")):
        found.append((layer, "weights", f"output layer {index} weights", force.getOutputLayerWeights(index)))
        found.append((layer, "bias", f"output layer {index} bias", force.getOutputLayerBias(index)))
    return found


def test_checksums_are_crc32_of_the_little_endian_bytes():
    """Each packed array is base64 of the little-endian doubles, and its CRC32 attribute is what
    zlib computes over those bytes."""
    _, force = configured_force()
    root = ElementTree.fromstring(openmm.XmlSerializer.serialize(force))
    arrays = packed_arrays(root, force)
    assert len(arrays) == 3 + 9 * force.getNumInteractionBlocks() + 2 * force.getNumOutputLayers()
    for element, key, name, values in arrays:
        raw = struct.pack(f"<{len(values)}d", *values)
        assert base64.b64decode(element.get(key)) == raw, name
        assert element.get(key + "CRC32") == f"{zlib.crc32(raw):08x}", name
    # The checksum attributes are the only ones a version-2 file lacks.
    assert sum(1 for element in root.iter() for key in element.keys() if key.endswith("CRC32")) == len(arrays)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_changed_character_in_any_packed_array_is_refused(where):
    """Changing one base64 character of any packed array (to another valid one) raises an
    OpenMMException that names the array: inside the data the checksum no longer matches, and in
    the last character before the padding the dropped bits are no longer zero."""
    _, force = configured_force()
    xml = openmm.XmlSerializer.serialize(force)
    baseline = ElementTree.fromstring(xml)
    # The unchanged tree, written back out, loads: only the changed character can make it fail.
    assert_same_force(force, CGSchNetForce.cast(openmm.XmlSerializer.deserialize(ElementTree.tostring(baseline, encoding="unicode"))))
    for index in range(len(packed_arrays(baseline, force))):
        root = ElementTree.fromstring(xml)
        element, key, name, _ = packed_arrays(root, force)[index]
        text = element.get(key)
        data = text.rstrip("=")
        position = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
        replacement = BASE64[(BASE64.index(text[position]) + 1) % 64]
        element.set(key, text[:position] + replacement + text[position + 1:])
        with pytest.raises(openmm.OpenMMException, match=re.escape(f"'{name}'")) as error:
            openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
        if where == "middle":
            assert "does not match its CRC-32 checksum" in str(error.value)


def test_version_2_xml_still_loads():
    """A file in the previous format (no checksums, version 2) loads into the same force."""
    _, force = configured_force()
    xml = openmm.XmlSerializer.serialize(force)
    old = re.sub(r' \w+CRC32="[0-9a-f]{8}"', "", xml.replace('version="3"', 'version="2"', 1))
    assert "CRC32" not in old and 'version="2"' in old
    restored = CGSchNetForce.cast(openmm.XmlSerializer.deserialize(old))
    assert_same_force(force, restored)
    assert openmm.XmlSerializer.serialize(restored) == xml


def test_version_3_without_a_checksum_is_refused():
    _, force = configured_force()
    xml = openmm.XmlSerializer.serialize(force)
    stripped = re.sub(r' c1CRC32="[0-9a-f]{8}"', "", xml, count=1)
    assert stripped != xml
    with pytest.raises(openmm.OpenMMException, match=r"'interaction block 0 c1' has no checksum \(c1CRC32\)"):
        openmm.XmlSerializer.deserialize(stripped)


def test_properties_round_trip_and_are_checked():
    """Properties travel with the force (XML, pickle, copy) in an optional Properties element of the
    same format version, absent from a force that has none, so such files stay as they were; a
    property in a file is checked as setProperty checks it."""
    _, force = configured_force()
    plain = openmm.XmlSerializer.serialize(force)
    assert "Propert" not in plain
    force.setProperty("CpuSimd", "generic")
    force.setProperty("CommonTuning", "tileBeads=2,tilePairs=4")
    xml = openmm.XmlSerializer.serialize(force)
    assert 'version="3"' in xml and xml.count("<Property ") == 2
    for other in [CGSchNetForce.cast(openmm.XmlSerializer.deserialize(xml)), pickle.loads(pickle.dumps(force)), copy.copy(force)]:
        assert other.getProperties() == {"CpuSimd": "generic", "CommonTuning": "tileBeads=2,tilePairs=4"}
        assert_same_force(force, other)
    # A reader of this version that does not know the element (and the force without it) sees the
    # same force: the properties never change the energy.
    stripped = re.sub(r"\s*<Properties>.*</Properties>", "", xml, flags=re.S)
    assert openmm.XmlSerializer.serialize(openmm.XmlSerializer.deserialize(stripped)) == plain
    with pytest.raises(openmm.OpenMMException, match=r"CGSchNetForce: property CpuSimd = 'avx9' is not valid"):
        openmm.XmlSerializer.deserialize(xml.replace('value="generic"', 'value="avx9"'))


SIZE_FIELDS = ["numTypes", "numFeatures", "numFilters", "numRBF", "filterTabulationPoints"]


@pytest.mark.parametrize("field", SIZE_FIELDS + ["version"])
@pytest.mark.parametrize("value", ["2147483647", "-1", "0", "off by one"])
def test_corrupt_size_fields_are_named(field, value):
    """A size attribute that does not fit the arrays it describes is reported by name before
    anything is allocated from it (numTypes=2147483647 used to end in std::bad_alloc)."""
    _, force = configured_force()
    xml = openmm.XmlSerializer.serialize(force)
    current = int(re.search(rf' {field}="(-?\d+)"', xml).group(1))
    if value == "off by one":
        if field in ("filterTabulationPoints", "version"):
            pytest.skip("any number of table points is valid, and version 2 of this file loads")
        value = str(current + 1)
    if value == "0" and field == "filterTabulationPoints":
        pytest.skip("0 table points (exact filters) is valid")
    changed = re.sub(rf' {field}="-?\d+"', f' {field}="{value}"', xml, count=1)
    assert changed != xml
    expected = f"unsupported version {value}" if field == "version" else f"{field} = {value}"
    with pytest.raises(openmm.OpenMMException, match=re.escape(expected)):
        openmm.XmlSerializer.deserialize(changed)
