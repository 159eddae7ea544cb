#include "audit/libcrypto.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace airlock::audit {
namespace {

template <typename Fn>
Status Resolve(void* lib, const char* name, Fn* out) {
  dlerror();  // clear a stale error, so that the one below is ours
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    const char* why = dlerror();
    return Status::Internal(std::string(kLibCrypto) + " has no " + name + ": " +
                            (why != nullptr ? why : "symbol is null"));
  }
  *out = reinterpret_cast<Fn>(sym);
  return Status::Ok();
}

Result<CryptoApi> Load() {
  // RTLD_LOCAL: its symbols stay out of the global namespace. The SHA-256 code linked into
  // airlock is a copy of its own (core/hash.cc) and shares no state with this one.
  void* lib = dlopen(kLibCrypto, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return Status::NotFound(std::string(kLibCrypto) +
                            " not found: install libssl3, which audit checkpoints need (" +
                            (why != nullptr ? why : "dlopen failed") + ")");
  }
  CryptoApi a;
  Status st = Resolve(lib, "BIO_new", &a.BIO_new);
  if (st.ok()) st = Resolve(lib, "BIO_s_mem", &a.BIO_s_mem);
  if (st.ok()) st = Resolve(lib, "BIO_new_mem_buf", &a.BIO_new_mem_buf);
  if (st.ok()) st = Resolve(lib, "BIO_ctrl", &a.BIO_ctrl);
  if (st.ok()) st = Resolve(lib, "BIO_free", &a.BIO_free);
  if (st.ok()) st = Resolve(lib, "ERR_clear_error", &a.ERR_clear_error);
  if (st.ok()) st = Resolve(lib, "EVP_PKEY_Q_keygen", &a.EVP_PKEY_Q_keygen);
  if (st.ok()) st = Resolve(lib, "EVP_PKEY_free", &a.EVP_PKEY_free);
  if (st.ok()) st = Resolve(lib, "EVP_PKEY_get_base_id", &a.EVP_PKEY_get_base_id);
  if (st.ok()) st = Resolve(lib, "EVP_PKEY_get_raw_public_key", &a.EVP_PKEY_get_raw_public_key);
  if (st.ok()) st = Resolve(lib, "PEM_read_bio_PrivateKey", &a.PEM_read_bio_PrivateKey);
  if (st.ok()) st = Resolve(lib, "PEM_read_bio_PUBKEY", &a.PEM_read_bio_PUBKEY);
  if (st.ok()) st = Resolve(lib, "PEM_write_bio_PrivateKey", &a.PEM_write_bio_PrivateKey);
  if (st.ok()) st = Resolve(lib, "PEM_write_bio_PUBKEY", &a.PEM_write_bio_PUBKEY);
  if (st.ok()) st = Resolve(lib, "EVP_MD_CTX_new", &a.EVP_MD_CTX_new);
  if (st.ok()) st = Resolve(lib, "EVP_MD_CTX_free", &a.EVP_MD_CTX_free);
  if (st.ok()) st = Resolve(lib, "EVP_DigestSignInit", &a.EVP_DigestSignInit);
  if (st.ok()) st = Resolve(lib, "EVP_DigestSign", &a.EVP_DigestSign);
  if (st.ok()) st = Resolve(lib, "EVP_DigestVerifyInit", &a.EVP_DigestVerifyInit);
  if (st.ok()) st = Resolve(lib, "EVP_DigestVerify", &a.EVP_DigestVerify);
  if (!st.ok()) {
    dlclose(lib);
    return st;
  }
  return a;  // the library stays loaded: the pointers above point into it
}

}  // namespace

Result<const CryptoApi*> Crypto() {
  static std::once_flag once;
  static CryptoApi api;
  static Status status;
  std::call_once(once, [] {
    Result<CryptoApi> loaded = Load();
    if (loaded.ok()) {
      api = *loaded;
    } else {
      status = loaded.status();
    }
  });
  if (!status.ok()) return status;
  return &api;
}

}  // namespace airlock::audit
