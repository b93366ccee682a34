#ifndef OPENMM_CGML_KERNELOPTIONS_H_
#define OPENMM_CGML_KERNELOPTIONS_H_

#include "internal/CGMLExport.h"
#include <map>
#include <string>
#include <vector>

namespace OpenMMCGML {

/**
 * The options that select how a platform's kernel computes a force (never what it computes), set
 * per force as properties (CGSchNetForce::setProperty), so that two Contexts in one process can
 * differ.  A property that a force does not set takes its value from an environment variable,
 * read when a Context is created, and otherwise the built-in default:
 *
 *   CpuSimd       (OPENMM_CGML_CPU_SIMD)       the CPU kernel's arithmetic: "auto" (default: AVX2+FMA
 *                                              where the processor has it, else the baseline
 *                                              x86-64 code), "avx2" or "generic" (the baseline)
 *   CommonTuning  (OPENMM_CGML_COMMON_TUNING)  developer settings of the CUDA/OpenCL/HIP kernels,
 *                                              comma-separated key=value pairs: singleLaunch=0|1,
 *                                              groups=N (1 to 65536), tilePairs=N and tileBeads=N
 *                                              (1 to 1024); a key not given is chosen for the
 *                                              system, a key given twice takes the later value
 *
 * Values are checked where they are given (setProperty, or a Context's creation for the
 * environment), and a bad one raises an OpenMMException naming the property or variable.
 */
class OPENMM_EXPORT_CGML CGMLKernelOptions {
public:
    /** The instruction set of the CPU kernel's arithmetic. */
    enum CpuInstructionSet {
        CpuAuto = 0,
        CpuAvx2 = 1,
        CpuGeneric = 2
    };
    /** The settings of CommonTuning; a value of 0 (-1 for singleLaunch) is chosen by the kernel. */
    struct CommonTuning {
        int singleLaunch = -1, groups = 0, tilePairs = 0, tileBeads = 0;
        /** The key=value form of the settings that are set, e.g. "singleLaunch=1,groups=4". */
        std::string toString() const;
    };
    static const char* const CpuSimdProperty;
    static const char* const CommonTuningProperty;
    /** Every property's name, in a fixed order. */
    static std::vector<std::string> getPropertyNames();
    /** The environment variable that gives a property's default ("" for an unknown property). */
    static std::string getEnvironmentVariable(const std::string& property);
    /**
     * Throw an OpenMMException naming the property unless `name` is a known property and `value`
     * a valid value of it.
     *
     * @param forceName  the force, for messages (e.g. "CGSchNetForce")
     */
    static void checkProperty(const std::string& name, const std::string& value, const std::string& forceName);
    /**
     * The value of a property in effect for a force: its own value if it has one, else the
     * environment variable's if that is set and not empty, else "".  `source` receives where the
     * value came from, for messages ("property CpuSimd" or "environment variable ...").
     */
    static std::string resolve(const std::map<std::string, std::string>& properties, const std::string& name, std::string& source);
    /** The CPU instruction set a force asks for (checked; CpuAuto unless set). */
    static CpuInstructionSet getCpuInstructionSet(const std::map<std::string, std::string>& properties, const std::string& forceName);
    /** The Common-kernel tuning a force asks for (checked; everything automatic unless set). */
    static CommonTuning getCommonTuning(const std::map<std::string, std::string>& properties, const std::string& forceName);
};

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_KERNELOPTIONS_H_*/
