#ifndef OPENMM_CGML_CGSCHNETFORCEPROXY_H_
#define OPENMM_CGML_CGSCHNETFORCEPROXY_H_

#include "internal/CGMLExport.h"
#include "openmm/serialization/SerializationProxy.h"

namespace OpenMMCGML {

/**
 * Serializes a CGSchNetForce to XML.  Weights are stored as packed arrays (base64 of
 * little-endian IEEE-754 doubles), integer lists as space-separated text.
 *
 * Version history: 1 = the first format; 2 adds filterTabulationPoints (version-1 files load
 * with exact filters); 3 stores beside each packed array `key` an attribute `keyCRC32`, the CRC-32
 * of the array's little-endian bytes (8 hexadecimal digits), and refuses an array that does not
 * match it.  Versions 1 and 2 still load (without that check).  Every size attribute is checked
 * against the length of the array it describes before anything is allocated from it.
 */
class OPENMM_EXPORT_CGML CGSchNetForceProxy : public OpenMM::SerializationProxy {
public:
    CGSchNetForceProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const;
    void* deserialize(const OpenMM::SerializationNode& node) const;
};

} // namespace OpenMMCGML

#endif
