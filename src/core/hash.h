// SHA-256 (OpenSSL), constant-time comparison and random tokens (the kernel's CSPRNG).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace airlock {

std::string Sha256Hex(std::string_view data);            // 64 lowercase hex chars
std::string HexEncode(std::string_view bytes);

// Incremental SHA-256, for data read in pieces (files); Final() as Sha256Hex.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const void* data, size_t size);
  std::string Final();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Compares two strings without a data-dependent early exit, so the time taken does not
// tell an attacker how many leading bytes of a guessed token hash were right.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `bytes` random bytes from the OS CSPRNG (getrandom), hex encoded. Aborts if the CSPRNG
// fails: a predictable token is worse than none.
std::string RandomHex(size_t bytes);

// A fresh agent/approver token: "alk_" + 32 random bytes in hex.
std::string NewToken();

}  // namespace airlock
