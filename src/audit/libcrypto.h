// OpenSSL's EVP and PEM functions that the audit checkpoints use (Ed25519 keys, signatures),
// from libcrypto loaded on first use.
//
// Linked statically, these calls bring in all of OpenSSL 3's providers, encoders and
// decoders: 331 KiB of the binary's 419 KiB of pointer tables (.data.rel.ro), which the
// dynamic loader relocates at every start of every `airlock` command. Loading them here
// instead took ~110 page faults off every command (625 to 513 for `airlock exec`, measured
// 2026-12-02), though only `airlock audit keygen|checkpoint`, `audit
// verify --checkpoints` and `serve --checkpoint-every` sign or check anything. So, like
// libpq (connectors/postgres/libpq.h) and libcurl (net/curl.h), they are reached through
// pointers into libcrypto.so, dlopen()ed by the first caller. <openssl/*.h> are included for
// the types and signatures only. SHA-256 (core/hash.cc) stays linked in: every command
// hashes, and the low-level SHA-256 code carries none of those tables.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>

#include "core/status.h"

namespace airlock::audit {

// The library these declarations describe: OpenSSL 3's headers, libcrypto.so.3.
static_assert(OPENSSL_SHLIB_VERSION == 3, "the headers are not OpenSSL 3's: kLibCrypto");
inline constexpr const char* kLibCrypto = "libcrypto.so.3";

// The functions, named as in OpenSSL. Same signatures (decltype of the declarations).
struct CryptoApi {
  decltype(&::BIO_new) BIO_new = nullptr;
  decltype(&::BIO_s_mem) BIO_s_mem = nullptr;
  decltype(&::BIO_new_mem_buf) BIO_new_mem_buf = nullptr;
  decltype(&::BIO_ctrl) BIO_ctrl = nullptr;
  decltype(&::BIO_free) BIO_free = nullptr;
  decltype(&::ERR_clear_error) ERR_clear_error = nullptr;
  decltype(&::EVP_PKEY_Q_keygen) EVP_PKEY_Q_keygen = nullptr;
  decltype(&::EVP_PKEY_free) EVP_PKEY_free = nullptr;
  decltype(&::EVP_PKEY_get_base_id) EVP_PKEY_get_base_id = nullptr;
  decltype(&::EVP_PKEY_get_raw_public_key) EVP_PKEY_get_raw_public_key = nullptr;
  decltype(&::PEM_read_bio_PrivateKey) PEM_read_bio_PrivateKey = nullptr;
  decltype(&::PEM_read_bio_PUBKEY) PEM_read_bio_PUBKEY = nullptr;
  decltype(&::PEM_write_bio_PrivateKey) PEM_write_bio_PrivateKey = nullptr;
  decltype(&::PEM_write_bio_PUBKEY) PEM_write_bio_PUBKEY = nullptr;
  decltype(&::EVP_MD_CTX_new) EVP_MD_CTX_new = nullptr;
  decltype(&::EVP_MD_CTX_free) EVP_MD_CTX_free = nullptr;
  decltype(&::EVP_DigestSignInit) EVP_DigestSignInit = nullptr;
  decltype(&::EVP_DigestSign) EVP_DigestSign = nullptr;
  decltype(&::EVP_DigestVerifyInit) EVP_DigestVerifyInit = nullptr;
  decltype(&::EVP_DigestVerify) EVP_DigestVerify = nullptr;
};

// Loads the library once per process (thread-safe); later calls return the same table, or
// the same error (a missing library or function: never a crash, and nothing is signed or
// verified without it).
Result<const CryptoApi*> Crypto();

}  // namespace airlock::audit
