#include "PackedArrays.h"
#include "openmm/OpenMMException.h"
#include <cerrno>
#include <climits>
#include <cstdint>
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

string packDoubles(const vector<double>& values) {
    // Write bytes least significant first, so the text is the same on every host.
    vector<unsigned char> bytes(values.size()*8);
    for (size_t i = 0; i < values.size(); i++) {
        uint64_t bits;
        memcpy(&bits, &values[i], 8);
        for (int b = 0; b < 8; b++)
            bytes[8*i+b] = (unsigned char) ((bits >> (8*b)) & 0xFF);
    }
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
