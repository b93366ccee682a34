"""The trained-model file: round trips, OpenMM forces for replicas, bead-set checks, bad files."""

import doctest
import json

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

import openmmcgml.cgmodel
import openmmcgml.priors
import openmmcgml.training
from openmmcgml.cgmodel import BeadSetMismatchError, CGModel, CGModelFileError
from openmmcgml.models import CGSchNet
from openmmcgml.priors import FourierDihedrals, HarmonicAngles, HarmonicBonds, PriorSet, Repulsion

NAMES = ["C", "N", "CA", "C", "N"]


def make_cgmodel(dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = CGSchNet(n_types=3, n_features=8, n_filters=8, n_rbf=6, n_interactions=2, cutoff=0.9,
                     output_hidden=(8,)).to(dtype)
    bonds = [[0, 1], [1, 2], [2, 3], [3, 4]]
    priors = PriorSet(5, bonds, [
        HarmonicBonds(bonds, k=[5e3] * 4, r0=[0.13, 0.146, 0.152, 0.133]),
        HarmonicAngles([[0, 1, 2], [1, 2, 3], [2, 3, 4]], k=[400.0] * 3, theta0=[1.95] * 3),
        FourierDihedrals([[0, 1, 2, 3], [1, 2, 3, 4]], k=[[1.0, 0.5], [2.0, 0.0]], phase=[[0.0, 1.0], [3.0, 0.0]]),
        Repulsion([[0, 3], [0, 4], [1, 4]], epsilon=[2.5] * 3, sigma=[0.3] * 3),
    ], temperature=300.0)
    options = dict(bead_types=[0, 1, 2, 0, 1], bead_names=NAMES, masses=[12.011, 14.007, 12.011, 12.011, 14.007],
                   temperature=300.0, mapping={"kind": "backbone", "beads": [[4], [6], [8], [14], [16]]},
                   metadata={"source": "test"})
    options.update(kwargs)
    return CGModel(model, priors, **options)


def positions(seed=0, n_frames=1):
    base = np.array([[0.0, 0, 0], [0.13, 0.02, 0], [0.2, 0.15, 0.03], [0.35, 0.17, 0.0], [0.42, 0.3, 0.05]])
    return base + np.random.default_rng(seed).normal(scale=0.01, size=(n_frames, 5, 3))


def reference_energy_forces(system, xyz):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(xyz)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def test_docstring_examples():
    for module in (openmmcgml.priors, openmmcgml.training, openmmcgml.cgmodel):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__


def test_defaults_and_validation():
    cg = make_cgmodel(bead_names=None, masses=None, exclusions=None)
    assert cg.bead_names == ["B0", "B1", "B2", "B3", "B4"] and cg.masses == [100.0] * 5
    assert cg.exclusions == [(0, 1), (1, 2), (2, 3), (3, 4)]  # default: the bonded pairs
    assert make_cgmodel(exclusions=[]).exclusions == []
    assert make_cgmodel(masses=50.0).masses == [50.0] * 5
    with pytest.raises(ValueError, match="bead_types lists 4 beads but the priors have 5"):
        make_cgmodel(bead_types=[0, 1, 2, 0])
    with pytest.raises(ValueError, match="bead type 3 of bead 2 is out of range"):
        make_cgmodel(bead_types=[0, 1, 3, 0, 1])
    with pytest.raises(ValueError, match="bead_names lists 2 beads"):
        make_cgmodel(bead_names=["a", "b"])
    with pytest.raises(ValueError, match="masses must be positive"):
        make_cgmodel(masses=[1.0, 1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="duplicate"):
        make_cgmodel(exclusions=[(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="mapping must be JSON-serialisable"):
        make_cgmodel(mapping={"x": object()})
    with pytest.raises(TypeError, match="CGSchNet"):
        CGModel("model", make_cgmodel().priors, [0] * 5)


def test_save_load_round_trip(tmp_path):
    cg = make_cgmodel(dtype=torch.float32)
    path = tmp_path / "sub" / "model.pt"
    cg.save(path)
    back = CGModel.load(path)
    for key in ("bead_types", "bead_names", "masses", "exclusions", "temperature", "mapping", "metadata"):
        assert getattr(back, key) == getattr(cg, key), key
    assert back.model.config == cg.model.config
    assert next(back.model.parameters()).dtype == torch.float32
    assert back.priors.to_dict() == cg.priors.to_dict()
    x = positions(n_frames=3)
    e1, f1 = cg.energy_and_forces(x)
    e2, f2 = back.energy_and_forces(x)
    assert torch.equal(e1, e2) and torch.equal(f1, f2)
    assert not list(tmp_path.glob("sub/*.tmp*"))


def test_openmm_system_equals_torch_and_replicas_are_independent():
    cg = make_cgmodel()
    x = positions(seed=1, n_frames=3)
    energy, forces = cg.energy_and_forces(x)
    system = cg.create_system(3)
    assert system.getNumParticles() == 15 and system.getParticleMass(2).value_in_unit(unit.dalton) == 12.011
    e, f = reference_energy_forces(system, x.reshape(-1, 3))
    assert e == pytest.approx(float(energy.sum()), rel=1e-8)
    np.testing.assert_allclose(f, forces.reshape(-1, 3).numpy(), rtol=1e-7, atol=1e-7)
    # all copies on top of each other: n times one copy (no coupling between copies)
    e1, f1 = reference_energy_forces(cg.create_system(1), x[0])
    e4, f4 = reference_energy_forces(cg.create_system(4), np.concatenate([x[0]] * 4))
    assert e4 == pytest.approx(4 * e1, rel=1e-10)
    np.testing.assert_allclose(f4.reshape(4, 5, 3), np.broadcast_to(f1, (4, 5, 3)), rtol=1e-9, atol=1e-9)

    force = cg.learned_force(2)
    assert list(force.getMolecules()) == [0] * 5 + [1] * 5
    assert list(force.getBeadTypes()) == cg.bead_types * 2
    pairs = sorted(tuple(force.getExclusionParticles(i)) for i in range(force.getNumExclusions()))
    assert pairs == [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (8, 9)]
    assert len(cg.prior_forces(2)) == 4
    # beads placed at chosen System particles
    particles = list(range(10, 20))
    assert list(cg.learned_force(2, particles=particles).getParticles()) == particles
    assert cg.learned_force(1, scale=0.5).getDefaultScale() == 0.5
    with pytest.raises(ValueError, match="n_replicas"):
        cg.learned_force(0)


def test_bead_set_checks(tmp_path):
    cg = make_cgmodel()
    cg.check_beads(bead_names=NAMES, bead_types=[0, 1, 2, 0, 1], n_beads=5)
    with pytest.raises(BeadSetMismatchError, match="the model has 5 beads but the data have 4"):
        cg.check_beads(bead_names=NAMES[:4])
    with pytest.raises(BeadSetMismatchError, match="bead 2 has name 'CA' in the model but 'CB' in the data"):
        cg.check_beads(bead_names=["C", "N", "CB", "C", "N"])
    with pytest.raises(BeadSetMismatchError, match="bead 4 has type 1 in the model but 2"):
        cg.check_beads(bead_types=[0, 1, 2, 0, 2])
    with pytest.raises(BeadSetMismatchError, match="5 beads but the positions have 6"):
        cg.energy_and_forces(np.zeros((1, 6, 3)))

    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "openmm-cgml-trajectory", "resolution": "coarse-grained",
                             "bead_names": json.dumps(["CA"] * 10), "bead_types": json.dumps(list(range(10)))})
        handle["coordinates"] = np.zeros((2, 10, 3), dtype=np.float32)
        handle["forces"] = np.zeros((2, 10, 3), dtype=np.float32)
    with pytest.raises(BeadSetMismatchError, match=r"5 beads but dataset .*other.h5 have 10"):
        cg.check_dataset(path)


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        CGModel.load(tmp_path / "missing.pt")
    with pytest.raises(CGModelFileError, match="is a directory"):
        CGModel.load(tmp_path)
    good = tmp_path / "model.pt"
    make_cgmodel().save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CGModelFileError, match="truncated.pt is corrupt"):
        CGModel.load(tmp_path / "truncated.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CGModelFileError, match="corrupt or not an openmm-cgml model file"):
        CGModel.load(tmp_path / "text.pt")
    make_cgmodel().model.save(tmp_path / "network.pt")  # a bare CGSchNet file, not a CGModel
    with pytest.raises(CGModelFileError, match="not an openmm-cgml model file"):
        CGModel.load(tmp_path / "network.pt")
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CGModelFileError, match="format version 99"):
        CGModel.load(tmp_path / "future.pt")
    payload = torch.load(good, weights_only=True)
    payload["bead_types"] = [0, 1, 2]
    torch.save(payload, tmp_path / "inconsistent.pt")
    with pytest.raises(CGModelFileError, match="inconsistent: bead_types lists 3 beads"):
        CGModel.load(tmp_path / "inconsistent.pt")
    payload = torch.load(good, weights_only=True)
    del payload["state_dict"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CGModelFileError, match="lacks state_dict"):
        CGModel.load(tmp_path / "partial.pt")


def test_priors_only_model(tmp_path):
    """The baseline without the network: the same beads and priors, no learned force."""
    cg = make_cgmodel()
    baseline = cg.priors_only()
    assert baseline.model is None and not baseline.has_network and cg.has_network
    assert baseline.bead_names == cg.bead_names and baseline.masses == cg.masses
    assert baseline.exclusions == cg.exclusions and baseline.metadata["priors_only"] is True
    assert baseline.learned_force(3) is None
    system = baseline.create_system(2)
    assert system.getNumParticles() == 10 and not any(f.getName().startswith("CGSchNet") for f in system.getForces())
    xyz = positions(3, n_frames=2)
    energy, forces = baseline.energy_and_forces(xyz)
    prior_energy, prior_forces = cg.priors.energy_and_forces(xyz)
    assert torch.equal(energy, prior_energy) and torch.equal(forces, prior_forces)
    openmm_energy, openmm_forces = reference_energy_forces(system, xyz.reshape(-1, 3))
    assert openmm_energy == pytest.approx(float(energy.sum()), rel=1e-8)
    np.testing.assert_allclose(openmm_forces, forces.numpy().reshape(-1, 3), rtol=1e-7, atol=1e-6)
    baseline.save(tmp_path / "baseline.pt")
    loaded = CGModel.load(tmp_path / "baseline.pt")
    assert loaded.model is None and loaded.priors.to_dict() == cg.priors.to_dict()
    with pytest.raises(ValueError, match="out of range"):
        CGModel(None, cg.priors, bead_types=[0, 1, 2, -1, 1])


def _bias(seed=0):
    from openmmcgml.models import BiasFeatures, Discriminator

    torch.manual_seed(seed)
    bias = Discriminator(BiasFeatures([[0, 3], [0, 4]], [[1, 2, 3]], [[0, 1, 2, 3], [1, 2, 3, 4]]), hidden=[8],
                         activation="tanh", clamp=2.0, temperature=300.0).double()
    bias.add_network([6, 6], "silu", 0.0)
    with torch.no_grad():
        for parameter in bias.networks.parameters():
            parameter.normal_(0.0, 0.8)
    return bias


def test_a_model_with_a_bias_round_trips_and_openmm_adds_the_bias(tmp_path):
    import dataclasses

    cg = dataclasses.replace(make_cgmodel(), bias=_bias())
    x = positions(seed=2, n_frames=3)
    energy, forces = cg.energy_and_forces(x)
    plain_energy, _ = make_cgmodel().energy_and_forces(x)
    # the bias's energy, -kT logit per frame, on top of the model's
    torch.testing.assert_close(energy - plain_energy, cg.bias.energy(torch.as_tensor(x), molecules=False).detach(),
                               rtol=1e-12, atol=1e-12)
    assert float((energy - plain_energy).abs().max()) > 0.1
    torch.testing.assert_close(cg.energy(x), energy, rtol=1e-12, atol=1e-12)
    system = cg.create_system(3)
    assert [system.getForce(i).getForceGroup() for i in range(system.getNumForces())][-2:] == [1, 2]
    e, f = reference_energy_forces(system, x.reshape(-1, 3))
    assert e == pytest.approx(float(energy.sum()), rel=1e-8)
    np.testing.assert_allclose(f, forces.reshape(-1, 3).numpy(), rtol=1e-7, atol=1e-7)
    path = tmp_path / "biased.pt"
    cg.save(path)
    back = CGModel.load(path)
    torch.testing.assert_close(back.energy(x), energy, rtol=1e-12, atol=1e-12)
    assert back.priors_only().bias is None
    with pytest.raises(ValueError, match="refer to bead 4 but the model has 4 beads"):
        from openmmcgml.models import BiasFeatures, Discriminator

        CGModel(None, PriorSet(4, terms=[HarmonicBonds([[0, 1]], k=[1.0], r0=[0.3])]), bead_types=[0] * 4,
                bias=Discriminator(BiasFeatures([[0, 4]])))


def test_version_1_model_files_still_load(tmp_path):
    cg = make_cgmodel()
    path = tmp_path / "model.pt"
    cg.save(path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    del payload["bias"]
    old = tmp_path / "version1.pt"
    torch.save(payload, old)
    back = CGModel.load(old)
    assert back.bias is None
    torch.testing.assert_close(back.energy(positions()), cg.energy(positions()), rtol=1e-12, atol=1e-12)


def test_cg_simulation_runs_a_biased_model_with_its_bias():
    import dataclasses

    from openmmcgml.simulation import CGSimulation

    cg = dataclasses.replace(make_cgmodel(), bias=_bias(seed=3))
    x = positions(seed=4, n_frames=2)
    sim = CGSimulation(cg, 2, platform="Reference", seed=1)
    sim.set_positions(x)
    state = sim.context.getState(getEnergy=True)
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        float(cg.energy(x).sum().detach()), rel=1e-8)
