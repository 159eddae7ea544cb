// What the sandbox tests read of processes and files on the host: whole files, and the
// children a thread or a process forked (/proc/PID/task/TID/children).
#pragma once

#include <sys/types.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace airlock::shell::test {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// The children that thread `tid` of process `pid` forked.
inline std::vector<pid_t> ChildrenOf(pid_t pid, pid_t tid) {
  std::istringstream in(
      ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/children"));
  std::vector<pid_t> kids;
  for (pid_t kid; in >> kid;) kids.push_back(kid);
  return kids;
}

// The children of a single-threaded process (a supervisor, an init).
inline std::vector<pid_t> ChildrenOf(pid_t pid) {
  return ChildrenOf(pid, pid);
}

}  // namespace airlock::shell::test
