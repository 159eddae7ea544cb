// SHA-256, constant-time comparison and random tokens (OpenSSL).
#pragma once

#include <string>
#include <string_view>

namespace airlock {

std::string Sha256Hex(std::string_view data);            // 64 lowercase hex chars
std::string HexEncode(std::string_view bytes);

// Compares two strings without a data-dependent early exit, so the time taken does not
// tell an attacker how many leading bytes of a guessed token hash were right.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `bytes` random bytes from the OS CSPRNG, hex encoded. Aborts if the CSPRNG fails:
// a predictable token is worse than none.
std::string RandomHex(size_t bytes);

// A fresh agent/approver token: "alk_" + 32 random bytes in hex.
std::string NewToken();

}  // namespace airlock
