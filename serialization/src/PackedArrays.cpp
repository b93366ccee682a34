#include "PackedArrays.h"
#include "openmm/OpenMMException.h"
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

using namespace std;

namespace OpenMMCGML {

static const char base64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64Value(char c) {
    if (c >= 'A' && c <= 'Z') return c-'A';
    if (c >= 'a' && c <= 'z') return c-'a'+26;
    if (c >= '0' && c <= '9') return c-'0'+52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/** The IEEE-754 bytes of the values, least significant first, so they are the same on every host. */
static vector<unsigned char> littleEndianBytes(const vector<double>& values) {
    vector<unsigned char> bytes(values.size()*8);
    for (size_t i = 0; i < values.size(); i++) {
        uint64_t bits;
        memcpy(&bits, &values[i], 8);
        for (int b = 0; b < 8; b++)
            bytes[8*i+b] = (unsigned char) ((bits >> (8*b)) & 0xFF);
    }
    return bytes;
}

/**
 * CRC-32 with the IEEE 802.3 polynomial in its bit-reversed form 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF (the checksum of zlib, PNG and gzip), computed a byte at a time from a table
 * of the 256 one-byte remainders.
 */
static uint32_t crc32(const vector<unsigned char>& bytes) {
    static const vector<uint32_t> table = [] {
        vector<uint32_t> remainders(256);
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t value = n;
            for (int bit = 0; bit < 8; bit++)
                value = (value & 1 ? 0xEDB88320u^(value >> 1) : value >> 1);
            remainders[n] = value;
        }
        return remainders;
    }();
    uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char byte : bytes)
        crc = table[(crc^byte) & 0xFF]^(crc >> 8);
    return crc^0xFFFFFFFFu;
}

string checksumDoubles(const vector<double>& values) {
    char text[9];
    snprintf(text, sizeof(text), "%08x", (unsigned int) crc32(littleEndianBytes(values)));
    return text;
}

void verifyChecksum(const vector<double>& values, const string& checksum, const string& what) {
    string expected = checksumDoubles(values);
    string stored = checksum;
    for (char& c : stored)
        c = (char) tolower((unsigned char) c);
    if (stored != expected)
        throw OpenMM::OpenMMException("CGSchNetForce XML: the packed array '"+what+"' does not match its CRC-32 checksum (stored "+
                                      checksum+", computed "+expected+" from the values): the file is corrupt");
}

string packDoubles(const vector<double>& values) {
    vector<unsigned char> bytes = littleEndianBytes(values);
    string text;
    text.reserve((bytes.size()+2)/3*4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        uint32_t chunk = bytes[i] << 16;
        if (i+1 < bytes.size()) chunk |= bytes[i+1] << 8;
        if (i+2 < bytes.size()) chunk |= bytes[i+2];
        text += base64Alphabet[(chunk >> 18) & 63];
        text += base64Alphabet[(chunk >> 12) & 63];
        text += (i+1 < bytes.size() ? base64Alphabet[(chunk >> 6) & 63] : '=');
        text += (i+2 < bytes.size() ? base64Alphabet[chunk & 63] : '=');
    }
    return text;
}

vector<double> unpackDoubles(const string& text, const string& what) {
    auto corrupt = [&](const string& why) {
        return OpenMM::OpenMMException("CGSchNetForce XML: the packed array '"+what+"' is corrupt ("+why+")");
    };
    if (text.size()%4 != 0)
        throw corrupt("its length is not a multiple of 4");
    vector<unsigned char> bytes;
    bytes.reserve(text.size()/4*3);
    for (size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int padding = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i+k];
            if (c == '=' && i+4 == text.size() && k >= 2) {
                v[k] = 0;
                padding++;
            }
            else {
                if (padding > 0)
                    throw corrupt("misplaced padding");
                v[k] = base64Value(c);
                if (v[k] < 0)
                    throw corrupt("invalid character");
            }
        }
        uint32_t chunk = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        // The bits a padded group drops must be zero, as packDoubles() writes them: otherwise a
        // changed character there would go unnoticed.
        if ((padding == 1 && (chunk & 0xFF) != 0) || (padding == 2 && (chunk & 0xFFFF) != 0))
            throw corrupt("nonzero bits before the padding");
        bytes.push_back((chunk >> 16) & 0xFF);
        if (padding < 2) bytes.push_back((chunk >> 8) & 0xFF);
        if (padding < 1) bytes.push_back(chunk & 0xFF);
    }
    if (bytes.size()%8 != 0)
        throw corrupt("it does not hold a whole number of doubles");
    vector<double> values(bytes.size()/8);
    for (size_t i = 0; i < values.size(); i++) {
        uint64_t bits = 0;
        for (int b = 0; b < 8; b++)
            bits |= ((uint64_t) bytes[8*i+b]) << (8*b);
        memcpy(&values[i], &bits, 8);
    }
    return values;
}

string packInts(const vector<int>& values) {
    stringstream text;
    for (size_t i = 0; i < values.size(); i++) {
        if (i > 0)
            text << ' ';
        text << values[i];
    }
    return text.str();
}

vector<int> unpackInts(const string& text, const string& what) {
    vector<int> values;
    const char* p = text.c_str();
    while (true) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        char* end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || (*end != ' ' && *end != '\0') || errno != 0 || value < INT_MIN || value > INT_MAX)
            throw OpenMM::OpenMMException("CGSchNetForce XML: the integer list '"+what+"' is corrupt");
        values.push_back((int) value);
        p = end;
    }
    return values;
}

} // namespace OpenMMCGML

void OpenMMCGML::setPackedArray(OpenMM::SerializationNode& node, const std::string& key, const std::vector<double>& values) {
    node.setStringProperty(key, packDoubles(values));
    node.setStringProperty(key+"CRC32", checksumDoubles(values));
}

std::vector<double> OpenMMCGML::getPackedArray(const OpenMM::SerializationNode& node, const std::string& key, bool requireChecksum,
                                               const std::string& format, const std::string& what) {
    std::vector<double> values = unpackDoubles(node.getStringProperty(key), what);
    if (requireChecksum) {
        if (!node.hasProperty(key+"CRC32"))
            throw OpenMM::OpenMMException(format+": the packed array '"+what+"' has no checksum ("+key+
                                          "CRC32), which this version of the format stores beside every packed array");
        verifyChecksum(values, node.getStringProperty(key+"CRC32"), what);
    }
    return values;
}
