#include "audit/libcrypto.h"

#include "core/dynlib.h"

#include <mutex>
#include <string>

namespace airlock::audit {
namespace {

Result<CryptoApi> Load() {
  // The SHA-256 code linked into airlock is a copy of its own (core/hash.cc) and shares no
  // state with this library.
  ASSIGN_OR_RETURN(void* lib, OpenLibrary(kLibCrypto, "libssl3"));
  CryptoApi a;
  Status st = ResolveSymbol(lib, kLibCrypto, "BIO_new", &a.BIO_new);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "BIO_s_mem", &a.BIO_s_mem);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "BIO_new_mem_buf", &a.BIO_new_mem_buf);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "BIO_ctrl", &a.BIO_ctrl);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "BIO_free", &a.BIO_free);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "ERR_clear_error", &a.ERR_clear_error);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_PKEY_Q_keygen", &a.EVP_PKEY_Q_keygen);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_PKEY_free", &a.EVP_PKEY_free);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_PKEY_get_base_id", &a.EVP_PKEY_get_base_id);
  if (st.ok())
    st = ResolveSymbol(lib, kLibCrypto, "EVP_PKEY_get_raw_public_key",
                       &a.EVP_PKEY_get_raw_public_key);
  if (st.ok())
    st = ResolveSymbol(lib, kLibCrypto, "PEM_read_bio_PrivateKey", &a.PEM_read_bio_PrivateKey);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "PEM_read_bio_PUBKEY", &a.PEM_read_bio_PUBKEY);
  if (st.ok())
    st = ResolveSymbol(lib, kLibCrypto, "PEM_write_bio_PrivateKey", &a.PEM_write_bio_PrivateKey);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "PEM_write_bio_PUBKEY", &a.PEM_write_bio_PUBKEY);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_MD_CTX_new", &a.EVP_MD_CTX_new);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_MD_CTX_free", &a.EVP_MD_CTX_free);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_DigestSignInit", &a.EVP_DigestSignInit);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_DigestSign", &a.EVP_DigestSign);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_DigestVerifyInit", &a.EVP_DigestVerifyInit);
  if (st.ok()) st = ResolveSymbol(lib, kLibCrypto, "EVP_DigestVerify", &a.EVP_DigestVerify);
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
