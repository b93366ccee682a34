"""openmmcgml.mapping: coordinate maps, constraint-aware force maps, mapping files."""

import functools
import json

import numpy as np
import openmm
import openmm.app as app
import pytest

from openmmcgml.data import (
    OracleConfig,
    Trajectory,
    TrajectoryMetadata,
    add_hydrogens,
    builtin_system,
    create_oracle_system,
    read_trajectory,
    run_oracle,
)
from openmmcgml.mapping import (
    AMINO_ACID_TYPES,
    LinearMap,
    alanine_dipeptide_map,
    build_map,
    ca_map,
    center_of_mass_map,
    check_force_map,
    constraint_groups,
    map_trajectory,
    map_trajectory_file,
    residue_com_map,
    slice_map,
    system_constraints,
)

FORCEFIELD = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
KB = 0.00831446261815324  # kJ/mol/K


@functools.lru_cache(maxsize=None)
def _molecule(name, constraints="HBonds"):
    molecule = add_hydrogens(builtin_system(name).build(), FORCEFIELD)
    system = create_oracle_system(molecule.topology, FORCEFIELD, constraints)
    return molecule, system


def _atom(topology, residue, name):
    return next(a.index for a in topology.atoms() if a.residue.name == residue and a.name == name)


def test_constraint_groups():
    assert constraint_groups(6, [(0, 1), (1, 2), (4, 5)]).tolist() == [0, 0, 0, 1, 2, 2]
    assert constraint_groups(3, None).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="outside"):
        constraint_groups(3, [(0, 3)])


def test_alanine_dipeptide_map():
    molecule, system = _molecule("alanine-dipeptide")
    topology = molecule.topology
    cg = alanine_dipeptide_map(topology, system_constraints(system))
    expected = [_atom(topology, "ACE", "C"), _atom(topology, "ALA", "N"), _atom(topology, "ALA", "CA"),
                _atom(topology, "ALA", "C"), _atom(topology, "NME", "N")]
    assert [cg.bead_atoms(b) for b in range(5)] == [[a] for a in expected]
    assert cg.type_names == ["ACE-C", "ALA-N", "ALA-CA", "ALA-C", "NME-N"] and cg.bead_types == [0, 1, 2, 3, 4]
    # The force map of each bead is its atom's constraint group: N+H, CA+HA; carbonyl carbons alone.
    names = [[(a.residue.name, a.name) for a in topology.atoms() if a.index in cg.force_atoms(b)] for b in range(5)]
    assert names == [[("ACE", "C")], [("ALA", "N"), ("ALA", "H")], [("ALA", "CA"), ("ALA", "HA")], [("ALA", "C")],
                     [("NME", "N"), ("NME", "H")]]
    assert np.allclose(cg.force_weights @ cg.coordinate_weights.T, np.eye(5))
    assert cg.masses.sum() == pytest.approx(sum(a.element.mass._value for a in topology.atoms()))
    # The partition map adds every atom whose mass the bead carries: the carbonyl O, the side chain, the caps.
    partition = alanine_dipeptide_map(topology, system_constraints(system), force_map="partition")
    names = [sorted(a.name for a in topology.atoms() if a.index in partition.force_atoms(b)) for b in range(5)]
    assert names == [["C", "CH3", "H1", "H2", "H3", "O"], ["H", "N"], ["CA", "CB", "HA", "HB1", "HB2", "HB3"],
                     ["C", "O"], ["C", "H", "H1", "H2", "H3", "N"]]
    assert partition.force_weights.sum() == topology.getNumAtoms()
    assert np.allclose(partition.masses, cg.masses) and partition.to_dict()["force_map"] == "partition"
    atom_names = alanine_dipeptide_map(topology, bead_types="atom-name")
    assert atom_names.type_names == ["C", "N", "CA"] and atom_names.bead_types == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="needs residues ACE-ALA-NME"):
        alanine_dipeptide_map(builtin_system("chignolin").build().topology)


def test_naive_slice_is_refused_with_constraints():
    molecule, system = _molecule("alanine-dipeptide")
    constraints = system_constraints(system)
    with pytest.raises(ValueError, match="does not cancel constraint forces: atoms .* are constrained"):
        alanine_dipeptide_map(molecule.topology, constraints, force_map="slice")
    naive = alanine_dipeptide_map(molecule.topology, constraints, force_map="slice", check=False)
    with pytest.raises(ValueError, match="does not cancel constraint forces"):
        naive.check()
    # Without constraints the slice is the correct map, and equal to the aggregate one.
    free = alanine_dipeptide_map(molecule.topology, None, force_map="slice")
    assert np.array_equal(free.force_weights, alanine_dipeptide_map(molecule.topology, None).force_weights)
    # With every bond constrained, neighbouring beads share a constraint group: no valid force map.
    _, rigid = _molecule("alanine-dipeptide", "AllBonds")
    with pytest.raises(ValueError, match="both contain atoms of the constraint group"):
        alanine_dipeptide_map(molecule.topology, system_constraints(rigid))


def test_check_force_map_names_the_violation():
    C = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"\(W C\^T\)\[1, 1\] = 0.5"):
        check_force_map(C, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    with pytest.raises(ValueError, match="bead 0 sum to 0.5"):
        check_force_map(C * 0.5, C)
    check_force_map(C, np.array([[1.0, 0, 0], [0, 1.0, 1.0]]), [(1, 2)])


def test_chignolin_ca_map_types_and_masses():
    molecule, system = _molecule("chignolin")
    cg = ca_map(molecule.topology, system_constraints(system))
    assert cg.n_beads == 10 and cg.bead_names == ["CA"] * 10 and len(cg.type_names) == 20
    assert AMINO_ACID_TYPES[cg.bead_types[0]] == "TYR" and AMINO_ACID_TYPES.index("ALA") == 0
    assert [cg.type_names[t] for t in cg.bead_types] == ["TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR"]
    glycine = [(a.residue.name, a.name) for a in molecule.topology.atoms() if a.index in cg.force_atoms(6)]
    assert sorted(glycine) == [("GLY", "CA"), ("GLY", "HA2"), ("GLY", "HA3")]
    assert cg.masses.sum() == pytest.approx(sum(a.element.mass._value for a in molecule.topology.atoms()))
    assert 120 < cg.masses[0] < 200  # about a tyrosine residue
    by_position = ca_map(molecule.topology, bead_types="position")
    assert by_position.bead_types == list(range(10))
    topology = cg.cg_topology()
    assert topology.getNumAtoms() == 10 and topology.getNumBonds() == 9


def test_center_of_mass_maps():
    molecule, system = _molecule("chignolin")
    constraints = system_constraints(system)
    cg = residue_com_map(molecule.topology, constraints)
    masses = np.array([a.element.mass._value for a in molecule.topology.atoms()])
    first = [a.index for a in list(molecule.topology.residues())[0].atoms()]
    expected = (masses[first, None] * molecule.positions[first]).sum(0) / masses[first].sum()
    assert np.allclose(cg.map_coordinates(molecule.positions)[0], expected)
    # Every atom of a residue is in its bead, so the force map is the residue's total force.
    assert np.array_equal(cg.force_weights, (cg.coordinate_weights > 0).astype(float))
    heavy = residue_com_map(molecule.topology, constraints, heavy_atoms_only=True)
    hydrogen = next(a.index for a in molecule.topology.atoms() if a.residue.index == 0 and a.name == "HA")
    assert heavy.coordinate_weights[0, hydrogen] == 0 and heavy.force_weights[0, hydrogen] == 1
    with pytest.raises(ValueError, match="shares atoms"):
        center_of_mass_map(molecule.topology, [[0, 1], [1, 2]])


def test_map_description_round_trip():
    molecule, system = _molecule("alanine-dipeptide")
    cg = alanine_dipeptide_map(molecule.topology, system_constraints(system))
    text = json.dumps(cg.to_dict())
    back = LinearMap.from_dict(json.loads(text))
    assert back == cg
    forces = np.random.default_rng(0).normal(size=(3, 22, 3))
    assert np.array_equal(back.map_forces(forces), cg.map_forces(forces))
    assert build_map(cg.to_dict(), molecule.topology) == cg
    with pytest.raises(ValueError, match="not a map description"):
        LinearMap.from_dict({"format": "something"})


def test_build_map_specs_and_errors():
    molecule, system = _molecule("chignolin")
    constraints = system_constraints(system)
    assert build_map("ca", molecule.topology, constraints).n_beads == 10
    assert build_map({"kind": "residue-com", "heavy_atoms_only": True}, molecule.topology, constraints).n_beads == 10
    assert build_map({"kind": "atoms", "atoms": [0, 5]}, molecule.topology).n_beads == 2
    assert build_map({"kind": "com", "groups": [[0, 1, 2], [3, 4]]}, molecule.topology).n_beads == 2
    with pytest.raises(ValueError, match="unknown map 'martini'"):
        build_map("martini", molecule.topology)
    with pytest.raises(ValueError, match="takes no option"):
        build_map({"kind": "ca", "heavy_atoms_only": True}, molecule.topology)
    alanine, _ = _molecule("alanine-dipeptide")
    with pytest.raises(ValueError, match="reads 166 atoms but the all-atom topology has 22"):
        build_map(build_map("ca", molecule.topology), alanine.topology)


def test_unknown_residue_gets_no_bead_type():
    topology = app.Topology()
    residue = topology.addResidue("XYZ", topology.addChain())
    topology.addAtom("CA", app.element.carbon, residue)
    with pytest.raises(ValueError, match="residue XYZ.* has no amino-acid bead type"):
        ca_map(topology)


# ----------------------------------------------------------------------------------- statistics


def _rigid_rotor_system():
    """A 3-atom toy: beads A and B (carbons, a soft bond) and a hydrogen H constrained to B.

    An angle term A-B-H (theta0 = 150 degrees) acts on H. The CG free energy of (A, B) is the
    soft bond plus an angle-averaged term; the force on H reaches B only through the constraint.
    """
    system = openmm.System()
    for mass in (12.0, 12.0, 1.008):
        system.addParticle(mass)
    system.addConstraint(1, 2, 0.1)
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, 0.4, 500.0)
    system.addForce(bond)
    angle = openmm.HarmonicAngleForce()
    angle.addAngle(0, 1, 2, np.radians(150.0), 100.0)
    system.addForce(angle)
    topology = app.Topology()
    residue = topology.addResidue("TOY", topology.addChain())
    atoms = [topology.addAtom(name, element, residue) for name, element in
             (("A", app.element.carbon), ("B", app.element.carbon), ("H", app.element.hydrogen))]
    topology.addBond(atoms[0], atoms[1])
    topology.addBond(atoms[1], atoms[2])
    return system, topology


def _sample(system, temperature, n_frames, every, seed):
    integrator = openmm.LangevinMiddleIntegrator(temperature, 10.0, 0.002)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    h = [0.4 + 0.1 * np.cos(np.radians(30.0)), 0.1 * np.sin(np.radians(30.0)), 0.0]
    context.setPositions(np.array([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], h]))
    context.setVelocitiesToTemperature(temperature, seed)
    integrator.step(1000)
    positions, forces = [], []
    for _ in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, getForces=True)
        positions.append(state.getPositions(asNumpy=True)._value)
        forces.append(state.getForces(asNumpy=True)._value)
    return np.array(positions), np.array(forces)


def test_mapped_mean_force_is_consistent_with_the_cg_free_energy():
    """Generalised equipartition along the CG bond: E[-(R_A - R_B).(F_A - F_B)] / 2 = 3 kT.

    For any CG free energy A(R) and the field v = (R_A - R_B)/2 on A, -(R_A - R_B)/2 on B,
    integration by parts gives E[v . grad A] = kT E[div v] = 3 kT, if F estimates -grad A. The
    aggregate force map (B + H) satisfies it; the naive slice (B alone) misses the force on H
    that the constraint carries to B and is off by about (r/d) kT |E cos theta| ~ 3.5 kT.
    """
    system, topology = _rigid_rotor_system()
    temperature = 300.0
    positions, forces = _sample(system, temperature, n_frames=8000, every=25, seed=2)
    constraints = system_constraints(system)
    results = {}
    for force_map in ("aggregate", "slice"):
        cg = slice_map(topology, [0, 1], constraints=constraints, force_map=force_map, check=force_map == "aggregate")
        R, F = cg.map_coordinates(positions), cg.map_forces(forces)
        virial = -np.einsum("fd,fd->f", R[:, 0] - R[:, 1], F[:, 0] - F[:, 1]) / 2 / (KB * temperature)
        blocks = virial.reshape(20, -1).mean(axis=1)
        results[force_map] = (virial.mean(), blocks.std(ddof=1) / np.sqrt(len(blocks)))
    mean, error = results["aggregate"]
    assert abs(mean - 3.0) < 5 * error + 0.05, results
    mean, error = results["slice"]
    assert abs(mean - 3.0) > 8 * error and abs(mean - 3.0) > 2.0, results


def test_partition_force_map_has_the_same_mean_force_and_less_noise():
    """The toy of the test above plus an unmapped atom D on a stiff bond to A (and an angle D-A-B).

    The aggregate map gives bead A the force on A alone, the partition map A + D, which cancels the
    stiff A-D bond force. Both satisfy W C^T = I and cancel the B-H constraint, so both estimate the
    mean force (the equipartition identity holds); the partition map's mapped forces vary far less.
    """
    system, topology = _rigid_rotor_system()
    system.addParticle(14.0)
    stiff = openmm.HarmonicBondForce()
    stiff.addBond(0, 3, 0.15, 2.0e5)
    system.addForce(stiff)
    angle = openmm.HarmonicAngleForce()
    angle.addAngle(3, 0, 1, np.radians(110.0), 300.0)
    system.addForce(angle)
    residue = next(topology.residues())
    d = topology.addAtom("D", app.element.nitrogen, residue)
    topology.addBond(next(topology.atoms()), d)
    temperature = 300.0
    integrator = openmm.LangevinMiddleIntegrator(temperature, 10.0, 0.001)
    integrator.setRandomNumberSeed(4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    h = [0.4 + 0.1 * np.cos(np.radians(30.0)), 0.1 * np.sin(np.radians(30.0)), 0.0]
    context.setPositions(np.array([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], h, [-0.05, 0.14, 0.0]]))
    context.setVelocitiesToTemperature(temperature, 4)
    integrator.step(2000)
    positions, forces = [], []
    for _ in range(16000):
        integrator.step(25)
        state = context.getState(getPositions=True, getForces=True)
        positions.append(state.getPositions(asNumpy=True)._value)
        forces.append(state.getForces(asNumpy=True)._value)
    positions, forces = np.array(positions), np.array(forces)
    constraints = system_constraints(system)
    results = {}
    for force_map in ("aggregate", "partition"):
        cg = slice_map(topology, [0, 1], constraints=constraints, force_map=force_map)
        R, F = cg.map_coordinates(positions), cg.map_forces(forces)
        virial = -np.einsum("fd,fd->f", R[:, 0] - R[:, 1], F[:, 0] - F[:, 1]) / 2 / (KB * temperature)
        blocks = virial.reshape(40, -1).mean(axis=1)
        results[force_map] = (virial.mean(), blocks.std(ddof=1) / np.sqrt(len(blocks)), F.var())
    assert slice_map(topology, [0, 1], constraints=constraints, force_map="partition").force_atoms(0) == [0, 3]
    for force_map, (mean, error, _) in results.items():
        assert abs(mean - 3.0) < 5 * error + 0.1, (force_map, results)
    assert results["partition"][2] < 0.1 * results["aggregate"][2], results  # measured: 37 times smaller


def test_partition_force_map_errors():
    from openmmcgml.mapping.forcemap import force_weights, partition_force_weights

    C = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(ValueError, match="needs the bead of each atom"):
        force_weights(C, None, "partition")
    with pytest.raises(ValueError, match="atom 1 is in the coordinate map of bead 1 but belongs to bead 0"):
        partition_force_weights(C, [0, 0, 1])
    with pytest.raises(ValueError, match="constrained but belong to beads 0 and 1"):
        partition_force_weights(C, [0, 1, 1], constraints=[(0, 2)])


# ----------------------------------------------------------------------------------- files


def test_map_trajectory_file(tmp_path):
    result = run_oracle(OracleConfig(system="chignolin", output=str(tmp_path / "aa.h5"), n_steps=20, save_every=10,
                                     temperature=450.0, platform="CPU", threads=1))
    info = map_trajectory_file(result.output, tmp_path / "cg.h5", chunk_frames=1)
    assert info.n_frames == 2 and info.n_particles == 10
    cg = info.read()
    aa = read_trajectory(result.output)
    assert cg.metadata.temperature == 450.0 and cg.metadata.sequence == "YYDPETGTWY"
    linear = LinearMap.from_dict(cg.metadata.mapping)
    assert np.allclose(cg.forces, linear.map_forces(aa.forces), atol=1e-3)
    assert np.allclose(cg.coordinates, linear.map_coordinates(aa.coordinates), atol=1e-6)
    assert np.allclose(cg.masses, linear.masses)
    # The CG topology of the file reads back as one bead per residue.
    assert [a.residue.name for a in cg.topology().atoms()][:2] == ["TYR", "TYR"]
    with pytest.raises(ValueError, match="does not cancel constraint forces"):
        map_trajectory_file(result.output, tmp_path / "naive.h5", "ca", force_map="slice")
    with pytest.raises(ValueError, match="coarse-grained; map an all-atom file"):
        map_trajectory_file(tmp_path / "cg.h5", tmp_path / "again.h5")
    with pytest.raises(FileExistsError):
        map_trajectory_file(result.output, tmp_path / "cg.h5")


def test_map_trajectory_in_memory_checks_sizes():
    molecule, system = _molecule("alanine-dipeptide")
    cg = alanine_dipeptide_map(molecule.topology, system_constraints(system))
    frames = Trajectory(np.zeros((2, 21, 3)), metadata=TrajectoryMetadata("all-atom"))
    with pytest.raises(ValueError, match="21 particles but the map reads 22 atoms"):
        map_trajectory(frames, cg)
    with pytest.raises(ValueError, match=r"coordinates have shape \(2, 21, 3\); the map expects"):
        cg.map_coordinates(frames.coordinates)
