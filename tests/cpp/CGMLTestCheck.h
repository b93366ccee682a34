#ifndef CGML_TEST_CHECK_H_
#define CGML_TEST_CHECK_H_

// The checks of the C++ test programs: each failed check prints what failed and counts, so that one
// run reports every failure; the program's exit status comes from finishChecks().

#include <cstdio>
#include <string>

namespace CGMLTest {

inline int& failureCount() {
    static int failures = 0;
    return failures;
}

inline void check(bool condition, const std::string& what) {
    if (!condition) {
        std::printf("FAILED: %s\n", what.c_str());
        failureCount()++;
    }
}

/** The exit status of a test program: 1 if any check failed, else 0 after printing `done`. */
inline int finishChecks(const char* done) {
    if (failureCount() > 0) {
        std::printf("%d check(s) FAILED\n", failureCount());
        return 1;
    }
    std::printf("%s\n", done);
    return 0;
}

} // namespace CGMLTest

#endif
