// What the sandbox tests read of processes and files on the host: whole files, the
// children a thread or a process forked (/proc/PID/task/TID/children), and whether a
// process has exited.
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

// Whether `pid` has wholly exited: gone, or a zombie (its state, after the name in
// parentheses, is Z or X). An exiting process drops its namespaces before its files are
// released, so a gone /proc/PID/ns entry does not mean this yet.
inline bool HasExited(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  return stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

}  // namespace airlock::shell::test
