"""A learned CG force in a plain OpenMM script.

Builds a coarse-grained chain (one bead per residue) with harmonic bonds, adds a CGSchNet model
as an ordinary OpenMM force, runs Langevin dynamics with a DCD reporter, then saves the System
to XML and shows that it loads back with the learned force intact.

Run with ``python examples/cg_chain_in_openmm.py --steps 2000`` (a few seconds on a laptop CPU).
Here the weights are random.  The network of a model that ``cgml train`` wrote (a CGModel file:
network, priors and beads) is ``CGModel.load(path).model`` (``from openmmcgml.cgmodel import
CGModel``); ``CGSchNet.load`` reads only what ``CGSchNet.save`` writes.
"""

import argparse
import os
import tempfile

import numpy as np
import openmm
import openmm.app as app
import torch
from openmm import unit

from openmmcgml.forces import CGSchNetForce
from openmmcgml.models import CGSchNet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beads", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--platform", default="Reference", help="Reference is fastest for one small chain on a CPU")
    parser.add_argument("--output", default=None, help="folder for the trajectory and System XML (default: a temporary one)")
    args = parser.parse_args(argv)
    output = args.output or tempfile.mkdtemp(prefix="cgml-example-")

    # 1. The CG System: masses and a bonded prior, as any OpenMM script would build them.
    n = args.beads
    system = openmm.System()
    bonds = openmm.HarmonicBondForce()
    topology = app.Topology()
    chain = topology.addChain()
    for i in range(n):
        system.addParticle(110.0)
        residue = topology.addResidue("ALA", chain)
        topology.addAtom("CA", app.Element.getBySymbol("C"), residue)
        if i > 0:
            bonds.addBond(i - 1, i, 0.38, 10000.0)
    system.addForce(bonds)

    # 2. The learned force: one call, then a standard addForce.
    torch.manual_seed(0)
    model = CGSchNet(n_types=4, n_features=32, n_filters=32, n_rbf=16, n_interactions=2, cutoff=1.0)
    bead_types = [i % 4 for i in range(n)]
    force = model.to_force(bead_types=bead_types, exclusions=[(i, i + 1) for i in range(n - 1)])
    system.addForce(force)

    # 3. Ordinary OpenMM from here on.
    positions = np.array([[0.38 * i, 0.1 * (i % 2), 0.0] for i in range(n)])
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.01 * unit.picoseconds)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName(args.platform))
    simulation.context.setPositions(positions)
    trajectory = os.path.join(output, "chain.dcd")
    simulation.reporters.append(app.DCDReporter(trajectory, 100))
    simulation.step(args.steps)
    state = simulation.context.getState(getEnergy=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    print(f"{args.steps} steps on {args.platform}: potential energy {energy:.3f} kJ/mol; trajectory in {trajectory}")

    # 4. The System, learned force included, round-trips through XML.
    xml_path = os.path.join(output, "system.xml")
    with open(xml_path, "w") as handle:
        handle.write(openmm.XmlSerializer.serialize(system))
    with open(xml_path) as handle:
        loaded = openmm.XmlSerializer.deserialize(handle.read())
    learned = CGSchNetForce.cast(loaded.getForce(1))
    print(f"reloaded {xml_path}: a CGSchNetForce with {learned.getNumInteractionBlocks()} interaction blocks")
    return energy


if __name__ == "__main__":
    main()
