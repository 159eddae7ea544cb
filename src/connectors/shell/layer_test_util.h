// Helpers for the layer tests: temporary trees, simulated overlay upper layers, and a
// byte-for-byte picture of a tree to compare before and after.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/hash.h"

namespace airlock::shell::testing {

// A directory under /tmp removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/airlock_layer_XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void MakeDirs(const std::string& path, mode_t mode = 0755) {
  std::filesystem::create_directories(path);
  chmod(path.c_str(), mode);
}

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool Whiteout(const std::string& path) {
  return mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0;
}

inline bool SetOpaque(const std::string& dir) {
  return setxattr(dir.c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

inline mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

// path -> "file 0644 <sha256>" | "dir 0755" | "symlink -> target" | "other": the whole tree
// below root, never following symlinks.
inline std::map<std::string, std::string> TreePicture(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::none, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string abs = it->path().string();
    std::string rel = abs.substr(root.size() + 1);
    struct stat st;
    if (lstat(abs.c_str(), &st) != 0) continue;
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    if (S_ISREG(st.st_mode)) {
      out[rel] = std::string("file ") + mode + " " + Sha256Hex(ReadFile(abs));
    } else if (S_ISDIR(st.st_mode)) {
      out[rel] = std::string("dir ") + mode;
    } else if (S_ISLNK(st.st_mode)) {
      out[rel] = "symlink -> " + std::filesystem::read_symlink(abs).string();
    } else {
      out[rel] = "other";
    }
  }
  return out;
}

// The workspace as an fd, closed at scope exit.
class DirFd {
 public:
  explicit DirFd(const std::string& path)
      : fd_(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  ~DirFd() {
    if (fd_ >= 0) close(fd_);
  }
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace airlock::shell::testing
