#ifndef OPENMM_CGML_COMMONKERNELDUMP_H_
#define OPENMM_CGML_COMMONKERNELDUMP_H_

#include "openmm/common/ComputeContext.h"
#include <map>
#include <string>

namespace OpenMMCGML {

/**
 * If the environment variable OPENMM_CGML_DUMP_KERNEL_SOURCE names a folder, write the source of a
 * program that is about to be compiled and the defines it is compiled with there, as
 * `<stem>-N.cc` and `<stem>-N.json` (N the first free number, so several Contexts each leave their
 * own pair).  The CUDA compile test (tests/test_cuda_kernel_compiles.py) compiles these with nvcc
 * on machines without a GPU.
 *
 * @param forceName  for the message when the files cannot be written
 */
void dumpKernelSourceIfAsked(OpenMM::ComputeContext& cc, const std::string& platformName, const std::string& stem,
                             const std::string& source, const std::map<std::string, std::string>& defines,
                             const std::string& forceName);

} // namespace OpenMMCGML

#endif /*OPENMM_CGML_COMMONKERNELDUMP_H_*/
