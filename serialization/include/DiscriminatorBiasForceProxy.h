#ifndef OPENMM_CGML_DISCRIMINATORBIASFORCEPROXY_H_
#define OPENMM_CGML_DISCRIMINATORBIASFORCEPROXY_H_

#include "internal/CGMLExport.h"
#include "openmm/serialization/SerializationProxy.h"

namespace OpenMMCGML {

/**
 * Serializes a DiscriminatorBiasForce to XML.  Weights, means and stds are packed arrays (base64 of
 * little-endian IEEE-754 doubles) each with the CRC-32 of its bytes beside it (`keyCRC32`), which
 * is verified on reading; bead lists are space-separated integers.
 *
 * Version history: 1 = the first format.
 */
class OPENMM_EXPORT_CGML DiscriminatorBiasForceProxy : public OpenMM::SerializationProxy {
public:
    DiscriminatorBiasForceProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const;
    void* deserialize(const OpenMM::SerializationNode& node) const;
};

} // namespace OpenMMCGML

#endif
