// hugetext FILE: reads FILE's loadable part back into the page cache in 2 MiB folios, so
// that every process that executes FILE afterwards maps its code with a few 2 MiB page
// table entries instead of faulting it in 4 KiB at a time.
//
// Why: a CLI command of airlock is a new process each time, and a new process maps its
// binary's code page by page (16 pages per fault). Measured on a 2-vCPU VM: 74 of the CLI
// process's ~316 page faults were on its 6 MiB of code, and the sandbox's supervisor and init
// (forks, which map file pages again) fault on it once more. A folio of the page cache that
// is 2 MiB large and 2 MiB aligned is mapped by one entry at the first fault in it (the
// kernel's do_set_pmd), for any process, with no setting of transparent huge pages needed;
// the binary is linked with -z max-page-size=0x200000 so that its code starts 2 MiB aligned
// both in the file and in memory.
//
// How: the page cache holds a file's pages in the folio sizes it read them in. Readahead for
// a mapping marked MADV_HUGEPAGE reads in 2 MiB folios (on a file system with large folios:
// ext4 since Linux 6.16, XFS). So: write the range back (sync_file_range), drop it from the
// cache (POSIX_FADV_DONTNEED), and read it again through such a mapping. Pages another
// process maps cannot be dropped and stay as they are.
//
// Best effort: the build never fails here. Anything that does not work (an old kernel, a
// file system without large folios, a binary in use) is said on stderr and left as it was;
// the binary runs the same either way. Exit status 0 unless FILE cannot be read at all.
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

constexpr uint64_t kHuge = 2u << 20;

// The end (in the file) of FILE's last loadable segment, and whether every loadable segment
// is aligned to 2 MiB; 0 if FILE is not a 64-bit ELF file this can read.
uint64_t LoadableEnd(int fd, uint64_t file_size, bool* aligned) {
  Elf64_Ehdr eh;
  if (::pread(fd, &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh)) return 0;
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256 ||
      eh.e_phoff > file_size || eh.e_phnum * sizeof(Elf64_Phdr) > file_size - eh.e_phoff) {
    return 0;
  }
  uint64_t end = 0;
  *aligned = true;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (::pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)) !=
        static_cast<ssize_t>(sizeof ph)) {
      return 0;
    }
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_align < kHuge) *aligned = false;
    if (ph.p_offset > file_size || ph.p_filesz > file_size - ph.p_offset) return 0;
    if (ph.p_offset + ph.p_filesz > end) end = ph.p_offset + ph.p_filesz;
  }
  return end;
}

// FilePmdMapped of the mapping that starts at `start`, in KiB (-1 if not found).
long PmdMappedKib(const void* start) {
  char head[32];
  std::snprintf(head, sizeof head, "%" PRIxPTR "-", reinterpret_cast<uintptr_t>(start));
  std::ifstream smaps("/proc/self/smaps");
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind(head, 0) == 0) {
      in = true;
    } else if (in && line.rfind("FilePmdMapped:", 0) == 0) {
      return std::strtol(line.c_str() + 14, nullptr, 10);
    } else if (in && line.find('-') != std::string::npos && line.find(':') == std::string::npos) {
      break;  // the next mapping
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hugetext FILE\n");
    return 2;
  }
  const char* path = argv[1];
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    std::fprintf(stderr, "hugetext: %s: %s\n", path, std::strerror(errno));
    return 2;
  }
  bool aligned = false;
  const uint64_t end = LoadableEnd(fd, static_cast<uint64_t>(st.st_size), &aligned);
  if (end == 0 || !aligned) {
    std::fprintf(stderr, "hugetext: %s: %s; left as it is\n", path,
                 end == 0 ? "not a 64-bit ELF file" : "not linked with 2 MiB segments");
    return 0;
  }
  // Dirty pages cannot be dropped: write the range back first (only it: the rest of the
  // file is debug information no process maps).
  int err = ::sync_file_range(fd, 0, static_cast<off_t>(end),
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER) == 0
                ? 0
                : errno;
  // posix_fadvise returns its error rather than setting errno.
  if (err == 0) err = ::posix_fadvise(fd, 0, static_cast<off_t>(end), POSIX_FADV_DONTNEED);
  if (err != 0) {
    std::fprintf(stderr, "hugetext: %s: cannot drop it from the page cache: %s; left as it is\n",
                 path, std::strerror(err));
    return 0;
  }
  // A 2 MiB-aligned address, so that file offset and address agree modulo 2 MiB.
  const size_t len = static_cast<size_t>(end);
  void* probe = ::mmap(nullptr, len + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return 0;
  const uintptr_t base = (reinterpret_cast<uintptr_t>(probe) + kHuge - 1) & ~(kHuge - 1);
  void* map = ::mmap(reinterpret_cast<void*>(base), len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (map == MAP_FAILED || ::madvise(map, len, MADV_HUGEPAGE) != 0) {
    std::fprintf(stderr, "hugetext: %s: no huge page mapping here (%s); left as it is\n", path,
                 std::strerror(errno));
    return 0;
  }
  // Each page read once: the readahead behind the first fault in each 2 MiB reads it all.
  const volatile unsigned char* bytes = static_cast<const unsigned char*>(map);
  for (size_t off = 0; off < len; off += 4096) (void)bytes[off];
  const long huge_kib = PmdMappedKib(map);
  std::fprintf(stderr, "hugetext: %s: %ld of %zu KiB of its loadable part in 2 MiB pages\n", path,
               huge_kib < 0 ? 0 : huge_kib, len / 1024);
  return 0;
}
