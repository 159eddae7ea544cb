// Shared libraries that airlock loads on first use (dlopen) instead of linking, because
// linking them slows every command's start: libcurl (net/curl.h), libpq
// (connectors/postgres/libpq.h), and libcrypto's EVP and PEM (audit/libcrypto.h). Each keeps
// a table of function pointers; these two steps fill it.
#pragma once

#include <dlfcn.h>

#include <string>

#include "core/status.h"

namespace airlock {

// dlopen(library) with RTLD_LOCAL, so that its symbols (and those of the libraries it brings)
// stay out of the global namespace and cannot interpose on what airlock links itself. A
// missing library is NotFound, naming the Debian package that provides it.
inline Result<void*> OpenLibrary(const char* library, const char* package) {
  void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return Status::NotFound(std::string(library) + " not found: install " + package + " (" +
                            (why != nullptr ? why : "dlopen failed") + ")");
  }
  return lib;
}

// Sets *out to the function `name` of `lib`, a handle of `library`; an error if it has none.
template <typename Fn>
Status ResolveSymbol(void* lib, const char* library, const char* name, Fn* out) {
  dlerror();  // clear a stale error, so that the one below is ours
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    const char* why = dlerror();
    return Status::Internal(std::string(library) + " has no " + name + ": " +
                            (why != nullptr ? why : "symbol is null"));
  }
  *out = reinterpret_cast<Fn>(sym);
  return Status::Ok();
}

}  // namespace airlock
