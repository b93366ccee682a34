#include "internal/CGSchNetTopology.h"
#include <algorithm>
#include <map>
#include <set>

using namespace OpenMMCGML;
using namespace std;

CGSchNetTopology CGSchNetTopology::build(const CGSchNetForce& force, int numSystemParticles) {
    force.validate(numSystemParticles);
    CGSchNetTopology topology;
    topology.particles = force.getParticles();
    if (topology.particles.empty())
        for (int i = 0; i < numSystemParticles; i++)
            topology.particles.push_back(i);
    int numBeads = topology.particles.size();
    topology.types = force.getBeadTypes();
    topology.molecules = force.getMolecules();
    if (topology.molecules.empty())
        topology.molecules.resize(numBeads, 0);

    // Group the beads by molecule so that only pairs within one molecule are enumerated.
    map<int, int> moleculeIndex;
    for (int i = 0; i < numBeads; i++) {
        auto inserted = moleculeIndex.insert(make_pair(topology.molecules[i], (int) topology.moleculeBeads.size()));
        if (inserted.second)
            topology.moleculeBeads.push_back(vector<int>());
        topology.moleculeBeads[inserted.first->second].push_back(i);
    }
    set<pair<int, int> > excluded;
    for (int e = 0; e < force.getNumExclusions(); e++) {
        int i, j;
        force.getExclusionParticles(e, i, j);
        excluded.insert(make_pair(min(i, j), max(i, j)));
    }
    for (const vector<int>& beads : topology.moleculeBeads)
        for (int a = 0; a < (int) beads.size(); a++)
            for (int b = a+1; b < (int) beads.size(); b++) {
                pair<int, int> p(beads[a], beads[b]);
                if (excluded.find(p) == excluded.end())
                    topology.pairs.push_back(p);
            }
    sort(topology.pairs.begin(), topology.pairs.end());

    vector<int> counts(numBeads, 0);
    for (const auto& p : topology.pairs) {
        counts[p.first]++;
        counts[p.second]++;
    }
    topology.neighborStart.resize(numBeads+1, 0);
    for (int i = 0; i < numBeads; i++)
        topology.neighborStart[i+1] = topology.neighborStart[i]+counts[i];
    topology.neighborPair.resize(topology.neighborStart[numBeads]);
    topology.neighborOther.resize(topology.neighborStart[numBeads]);
    vector<int> next(topology.neighborStart.begin(), topology.neighborStart.end()-1);
    for (int p = 0; p < (int) topology.pairs.size(); p++) {
        int i = topology.pairs[p].first, j = topology.pairs[p].second;
        topology.neighborPair[next[i]] = p;
        topology.neighborOther[next[i]++] = j;
        topology.neighborPair[next[j]] = p;
        topology.neighborOther[next[j]++] = i;
    }
    return topology;
}
