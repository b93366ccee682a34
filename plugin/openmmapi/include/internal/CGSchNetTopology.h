#ifndef OPENMM_CGML_CGSCHNETTOPOLOGY_H_
#define OPENMM_CGML_CGSCHNETTOPOLOGY_H_

#include "CGSchNetForce.h"
#include <utility>
#include <vector>

namespace OpenMMCGML {

/**
 * The interaction graph of a CGSchNetForce, resolved against a System: which System particle each
 * bead is, and every candidate pair (same molecule, not excluded) that interacts when closer than
 * the cutoff.  Every platform builds its pair and neighbour lists from this one description.
 *
 * Beads are numbered by their position in the force's particle list ("local" indices).
 */
struct OPENMM_EXPORT_CGML CGSchNetTopology {
    /** The System index of each bead. */
    std::vector<int> particles;
    /** The bead type and molecule id of each bead. */
    std::vector<int> types, molecules;
    /** Candidate pairs (i, j) of local indices with i < j, sorted. */
    std::vector<std::pair<int, int> > pairs;
    /**
     * The pairs each bead takes part in, in CSR form: for bead i, entries neighborStart[i] to
     * neighborStart[i+1]-1 of neighborPair (the index into pairs) and neighborOther (the other bead).
     */
    std::vector<int> neighborStart, neighborPair, neighborOther;
    /** The beads of each molecule, molecules numbered in order of first appearance. */
    std::vector<std::vector<int> > moleculeBeads;

    /**
     * Resolve a force against a System of numSystemParticles particles.  The force is validated
     * first; an OpenMMException names any problem.
     */
    static CGSchNetTopology build(const CGSchNetForce& force, int numSystemParticles);
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_CGSCHNETTOPOLOGY_H_*/
