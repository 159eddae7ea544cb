// The seccomp filter's rules, compiled to BPF by libseccomp. Not used at run time: the
// build runs seccomp_gen (this code) once and airlock carries the program it printed
// (seccomp.cc). A unit test compiles the rules again and compares.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

namespace airlock::shell {

// The BPF program, or false with *error set. Depends on libseccomp and the C library only
// (the generator links nothing else).
bool CompileSeccompRules(std::vector<sock_filter>* program, std::string* error);

}  // namespace airlock::shell
