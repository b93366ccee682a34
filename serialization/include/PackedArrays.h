#ifndef OPENMM_CGML_PACKEDARRAYS_H_
#define OPENMM_CGML_PACKEDARRAYS_H_

#include "internal/CGMLExport.h"
#include "openmm/serialization/SerializationNode.h"
#include <string>
#include <vector>

namespace OpenMMCGML {

/** Encode doubles as base64 of their little-endian IEEE-754 bytes (exact and compact). */
OPENMM_EXPORT_CGML std::string packDoubles(const std::vector<double>& values);
/** Decode packDoubles() output; throws OpenMMException naming `what` if the text is not valid. */
OPENMM_EXPORT_CGML std::vector<double> unpackDoubles(const std::string& text, const std::string& what);
/**
 * The CRC-32 checksum (IEEE 802.3 polynomial, as zlib.crc32 computes it) of the little-endian
 * IEEE-754 bytes of the values, as 8 lower-case hexadecimal digits.
 */
OPENMM_EXPORT_CGML std::string checksumDoubles(const std::vector<double>& values);
/**
 * Throw an OpenMMException naming `what` unless checksumDoubles(values) equals the stored checksum
 * (hexadecimal digits in either case).
 */
OPENMM_EXPORT_CGML void verifyChecksum(const std::vector<double>& values, const std::string& checksum, const std::string& what);
/** Encode integers as space-separated decimal text. */
OPENMM_EXPORT_CGML std::string packInts(const std::vector<int>& values);
/** Decode packInts() output; throws OpenMMException naming `what` if the text is not valid. */
OPENMM_EXPORT_CGML std::vector<int> unpackInts(const std::string& text, const std::string& what);

/** Store a packed array under `key` and the CRC-32 checksum of its values under `key` + "CRC32". */
OPENMM_EXPORT_CGML void setPackedArray(OpenMM::SerializationNode& node, const std::string& key, const std::vector<double>& values);
/**
 * Read a packed array stored by setPackedArray().  With requireChecksum, refuse it unless its
 * checksum attribute is present and matches.  Messages start with `format` (e.g.
 * "CGSchNetForce XML") and name the array as `what`.
 */
OPENMM_EXPORT_CGML std::vector<double> getPackedArray(const OpenMM::SerializationNode& node, const std::string& key,
                                                      bool requireChecksum, const std::string& format, const std::string& what);

} // namespace OpenMMCGML

#endif
