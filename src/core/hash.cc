#include "core/hash.h"

// SHA-256 goes through OpenSSL's SHA256_Init/Update/Final, deprecated since OpenSSL 3.0 in
// favour of EVP. They are the same code as EVP's default provider runs (the assembly
// block function), but EVP's first use in a process loads openssl.cnf and the provider:
// 0.6-1.1 ms on this kind of machine, which every CLI command paid (`airlock exec` hashes
// the caller's token before anything else). The low-level calls cost ~1 µs the first time.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace airlock {

std::string HexEncode(std::string_view bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

namespace {

[[noreturn]] void HashFailed(const char* step) {
  // Cannot happen with a working libcrypto; a wrong hash would silently break the chain.
  std::fprintf(stderr, "airlock: SHA-256 %s failed in libcrypto\n", step);
  std::abort();
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_CTX c;
  if (SHA256_Init(&c) != 1 || SHA256_Update(&c, data.data(), data.size()) != 1 ||
      SHA256_Final(md, &c) != 1) {
    HashFailed("digest");
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

struct Sha256Stream::Ctx {
  SHA256_CTX c;
};

Sha256Stream::Sha256Stream() : ctx_(std::make_unique<Ctx>()) {
  if (SHA256_Init(&ctx_->c) != 1) HashFailed("init");
}

Sha256Stream::~Sha256Stream() = default;

void Sha256Stream::Update(const void* data, size_t size) {
  if (size > 0 && SHA256_Update(&ctx_->c, data, size) != 1) HashFailed("update");
}

std::string Sha256Stream::Final() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  if (SHA256_Final(md, &ctx_->c) != 1) HashFailed("final");
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomHex(size_t bytes) {
  // The kernel's CSPRNG directly: OpenSSL's RAND_bytes seeds a DRBG of its own on first
  // use (~0.5-0.9 ms per process here) from the same source. getrandom with no flags blocks
  // only until the kernel's pool is initialised at boot.
  std::string buf(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(buf.data() + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "airlock: the OS random generator failed\n");
      std::abort();
    }
    got += static_cast<size_t>(n);
  }
  return HexEncode(buf);
}

std::string NewToken() { return "alk_" + RandomHex(32); }

}  // namespace airlock
