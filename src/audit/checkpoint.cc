#include "audit/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "audit/libcrypto.h"
#include "core/hash.h"
#include "core/json.h"

namespace airlock::audit {
namespace {

constexpr size_t kMaxKeyFileBytes = 16 * 1024;
constexpr size_t kMaxLineBytes = 4096;
constexpr size_t kSignatureBytes = 64;

// Owners of libcrypto's objects, freed through the loaded library (libcrypto.h).
struct PkeyFree {
  const CryptoApi* c;
  void operator()(EVP_PKEY* k) const { c->EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  const CryptoApi* c;
  void operator()(BIO* b) const { c->BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
struct MdCtxFree {
  const CryptoApi* c;
  void operator()(EVP_MD_CTX* m) const { c->EVP_MD_CTX_free(m); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

bool IsHex(std::string_view s, size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string SignedText(int64_t seq, const std::string& hash, int64_t at_ms) {
  return "airlock audit checkpoint v1\nseq=" + std::to_string(seq) + "\nhash=" + hash +
         "\nat_ms=" + std::to_string(at_ms) + "\n";
}

// A key file's bytes; a private key must be its owner's alone, as ssh wants.
Result<std::string> ReadKeyFile(const std::string& path, bool private_key) {
  // O_NONBLOCK: a FIFO named as the key must not hang the open (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return Status::NotFound("cannot open the key file " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("the key file " + path + " is not a regular file");
  }
  if (private_key && (st.st_mode & 077) != 0) {
    ::close(fd);
    return Status::PermissionDenied("the private key " + path +
                                    " may be read by others than its owner; chmod 600 it");
  }
  std::string bytes;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > kMaxKeyFileBytes) break;
  }
  ::close(fd);
  if (n < 0) return Status::IoError("read " + path + ": " + std::strerror(errno));
  if (bytes.size() > kMaxKeyFileBytes) {
    return Status::InvalidArgument("the key file " + path + " is too large to be a key");
  }
  return bytes;
}

// Keys are never encrypted here: no passphrase is asked for (OpenSSL would prompt on the
// terminal, and a cron job has none).
int NoPassphrase(char*, int, int, void*) {
  return 0;
}

Result<Pkey> LoadPrivate(const CryptoApi& c, const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path, /*private_key=*/true));
  Bio bio(c.BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BioFree{&c});
  Pkey key(bio ? c.PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr) : nullptr,
           PkeyFree{&c});
  c.ERR_clear_error();
  if (!key || c.EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument(path +
                                   " holds no Ed25519 private key (PEM); make one with "
                                   "airlock audit keygen");
  }
  return key;
}

// A public key file, or a private key file's public half.
Result<Pkey> LoadPublic(const CryptoApi& c, const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path, /*private_key=*/false));
  Bio bio(c.BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BioFree{&c});
  Pkey key(bio ? c.PEM_read_bio_PUBKEY(bio.get(), nullptr, &NoPassphrase, nullptr) : nullptr,
           PkeyFree{&c});
  if (!key) {
    Bio again(c.BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BioFree{&c});
    key.reset(again ? c.PEM_read_bio_PrivateKey(again.get(), nullptr, &NoPassphrase, nullptr)
                    : nullptr);
  }
  c.ERR_clear_error();  // the first read's expected failure must not linger in the queue
  if (!key || c.EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument(path + " holds no Ed25519 public key (PEM)");
  }
  return key;
}

Result<std::string> KeyId(const CryptoApi& c, EVP_PKEY* key) {
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (c.EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof raw) {
    return Status::Internal("cannot read the Ed25519 public key");
  }
  return Sha256Hex(std::string_view(reinterpret_cast<const char*>(raw), len)).substr(0, 16);
}

// Writes `bytes` to a new file (O_EXCL) with `mode`.
Status WriteNewFile(const std::string& path, const std::string& bytes, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status::FailedPrecondition(path + " exists; airlock does not overwrite a key");
    }
    return Status::IoError("create " + path + ": " + std::strerror(errno));
  }
  errno = EIO;  // what a short write that sets no errno reports
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::IoError("write " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

std::string BioText(const CryptoApi& c, BIO* bio) {
  char* data = nullptr;
  // BIO_get_mem_data, a macro over BIO_ctrl.
  long n = c.BIO_ctrl(bio, BIO_CTRL_INFO, 0, reinterpret_cast<char*>(&data));
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Result<std::string> HexDecode(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    out.push_back(static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  }
  return out;
}

}  // namespace

Result<std::string> WriteKeyPair(const std::string& private_path) {
  ASSIGN_OR_RETURN(const CryptoApi* c, Crypto());
  Pkey key(c->EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), PkeyFree{c});
  if (!key) return Status::Internal("cannot generate an Ed25519 key");
  Bio priv(c->BIO_new(c->BIO_s_mem()), BioFree{c});
  Bio pub(c->BIO_new(c->BIO_s_mem()), BioFree{c});
  if (!priv || !pub ||
      c->PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      c->PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    return Status::Internal("cannot write the key as PEM");
  }
  const std::string public_path = private_path + ".pub";
  struct stat st;
  if (::lstat(public_path.c_str(), &st) == 0) {
    return Status::FailedPrecondition(public_path + " exists; airlock does not overwrite a key");
  }
  RETURN_IF_ERROR(WriteNewFile(private_path, BioText(*c, priv.get()), 0600));
  Status pub_written = WriteNewFile(public_path, BioText(*c, pub.get()), 0644);
  if (!pub_written.ok()) {
    ::unlink(private_path.c_str());
    return pub_written;
  }
  return KeyId(*c, key.get());
}

Result<std::string> KeyIdOf(const std::string& pem_path) {
  ASSIGN_OR_RETURN(const CryptoApi* c, Crypto());
  ASSIGN_OR_RETURN(Pkey key, LoadPublic(*c, pem_path));
  return KeyId(*c, key.get());
}

Result<Checkpoint> SignCheckpoint(const std::string& private_path, int64_t seq,
                                  const std::string& hash, int64_t at_ms) {
  ASSIGN_OR_RETURN(const CryptoApi* api, Crypto());
  ASSIGN_OR_RETURN(Pkey key, LoadPrivate(*api, private_path));
  Checkpoint c;
  c.seq = seq;
  c.hash = hash;
  c.at_ms = at_ms;
  ASSIGN_OR_RETURN(c.key_id, KeyId(*api, key.get()));
  const std::string text = SignedText(seq, hash, at_ms);
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  MdCtx ctx(api->EVP_MD_CTX_new(), MdCtxFree{api});
  if (!ctx || api->EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      api->EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(text.data()),
                          text.size()) != 1 ||
      len != kSignatureBytes) {
    return Status::Internal("cannot sign the checkpoint");
  }
  c.signature = HexEncode(std::string_view(reinterpret_cast<const char*>(sig), len));
  return c;
}

std::string CheckpointLine(const Checkpoint& c) {
  // Written by hand in a fixed order, so that a line can be compared by eye and by diff.
  return "{\"airlock_checkpoint\":1,\"seq\":" + std::to_string(c.seq) + ",\"hash\":\"" + c.hash +
         "\",\"at_ms\":" + std::to_string(c.at_ms) + ",\"key_id\":\"" + c.key_id +
         "\",\"signature\":\"" + c.signature + "\"}";
}

Result<Checkpoint> ParseCheckpointLine(std::string_view line) {
  if (line.size() > kMaxLineBytes) return Status::InvalidArgument("the line is too long");
  auto parsed = ParseJson(line, 2);
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::InvalidArgument("not a JSON object");
  }
  const Json& j = *parsed;
  static const std::set<std::string> kKeys = {
      "airlock_checkpoint", "seq", "hash", "at_ms", "key_id", "signature"};
  for (const auto& [k, v] : j.items()) {
    if (kKeys.count(k) == 0) return Status::InvalidArgument("a key that is not a checkpoint's");
  }
  if (j.size() != kKeys.size()) return Status::InvalidArgument("missing keys");
  // Each key once: JSON readers differ on which of two equal keys wins, and the line must
  // read the same to whoever looks at it as to this check.
  size_t keys_seen = 0;
  bool duplicate = false;
  std::set<std::string> seen;
  const Json scanned = Json::parse(
      line,
      [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::key && depth == 1) {
          ++keys_seen;
          if (!seen.insert(parsed.get<std::string>()).second) duplicate = true;
        }
        return true;
      },
      /*allow_exceptions=*/false);
  (void)scanned;
  if (duplicate || keys_seen != kKeys.size()) return Status::InvalidArgument("a key given twice");
  if (!j["airlock_checkpoint"].is_number_integer() || j["airlock_checkpoint"].get<int64_t>() != 1) {
    return Status::InvalidArgument("airlock_checkpoint is not 1 (an unknown version)");
  }
  Checkpoint c;
  for (const char* k : {"seq", "at_ms"}) {
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 0) {
      return Status::InvalidArgument(std::string(k) + " is not a non-negative integer");
    }
  }
  c.seq = j["seq"].get<int64_t>();
  c.at_ms = j["at_ms"].get<int64_t>();
  auto hex = [&](const char* k, size_t n, std::string* out) -> Status {
    if (!j[k].is_string() || !IsHex(j[k].get_ref<const std::string&>(), n)) {
      return Status::InvalidArgument(std::string(k) + " is not " + std::to_string(n) +
                                     " lowercase hex digits");
    }
    *out = j[k].get<std::string>();
    return Status::Ok();
  };
  RETURN_IF_ERROR(hex("hash", 64, &c.hash));
  RETURN_IF_ERROR(hex("key_id", 16, &c.key_id));
  RETURN_IF_ERROR(hex("signature", 2 * kSignatureBytes, &c.signature));
  return c;
}

namespace {

Status VerifyWith(const CryptoApi& api, const Checkpoint& c, EVP_PKEY* key) {
  ASSIGN_OR_RETURN(std::string id, KeyId(api, key));
  if (id != c.key_id) {
    return Status::PermissionDenied("signed by key " + c.key_id + ", not by " + id +
                                    " (the public key given)");
  }
  ASSIGN_OR_RETURN(std::string sig, HexDecode(c.signature));
  const std::string text = SignedText(c.seq, c.hash, c.at_ms);
  MdCtx ctx(api.EVP_MD_CTX_new(), MdCtxFree{&api});
  if (!ctx || api.EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1) {
    return Status::Internal("cannot set up the signature check");
  }
  const int verified = api.EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
      reinterpret_cast<const unsigned char*>(text.data()), text.size());
  api.ERR_clear_error();
  if (verified != 1) {
    return Status::PermissionDenied("the signature does not match (a forged or altered line)");
  }
  return Status::Ok();
}

}  // namespace

Status VerifyCheckpointSignature(const Checkpoint& c, const std::string& public_path) {
  ASSIGN_OR_RETURN(const CryptoApi* api, Crypto());
  ASSIGN_OR_RETURN(Pkey key, LoadPublic(*api, public_path));
  return VerifyWith(*api, c, key.get());
}

Result<CheckpointReport> CheckCheckpoints(
    std::string_view text, const std::string& public_path,
    const std::function<Status(const std::function<bool(const AuditEvent&)>&)>& scan) {
  ASSIGN_OR_RETURN(const CryptoApi* api, Crypto());
  ASSIGN_OR_RETURN(Pkey key, LoadPublic(*api, public_path));  // a bad key: an error, not a report
  CheckpointReport report;
  // The checkpoints whose signature holds, by the seq whose hash they name.
  std::multimap<int64_t, std::pair<int, Checkpoint>> wanted;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    ++report.checked;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    auto c = ParseCheckpointLine(line);
    if (!c.ok()) {
      report.problems.push_back(where + "not a checkpoint (" + c.status().message() + ")");
      continue;
    }
    Status signed_ok = VerifyWith(*api, *c, key.get());
    if (!signed_ok.ok()) {
      report.problems.push_back(where + "seq " + std::to_string(c->seq) + ": " +
                                signed_ok.message());
      continue;
    }
    if (c->seq > report.newest_seq ||
        (c->seq == report.newest_seq && c->at_ms > report.newest_at_ms)) {
      report.newest_seq = c->seq;
      report.newest_at_ms = c->at_ms;
    }
    ++report.valid;
    if (c->seq == 0) {
      if (c->hash != kGenesisHash) {
        report.problems.push_back(where + "seq 0 names a hash that is not the genesis hash");
      }
      continue;
    }
    wanted.emplace(c->seq, std::make_pair(line_no, *c));
    if (end == text.size()) break;
  }
  // A file with no checkpoint in it vouches for nothing: a signing job that never wrote a
  // line, or a file emptied by whoever can reach it, must not pass as "all checkpoints hold".
  if (report.checked == 0) report.problems.push_back("the file holds no checkpoint");
  if (wanted.empty()) return report;
  int64_t last_seq = 0;
  const int64_t max_wanted = wanted.rbegin()->first;
  RETURN_IF_ERROR(scan([&](const AuditEvent& e) {
    last_seq = e.seq;
    auto [lo, hi] = wanted.equal_range(e.seq);
    for (auto it = lo; it != hi; ++it) {
      const Checkpoint& c = it->second.second;
      if (e.hash != c.hash) {
        report.problems.push_back("line " + std::to_string(it->second.first) + ": seq " +
                                  std::to_string(c.seq) + ": the chain holds " +
                                  e.hash.substr(0, 16) + "…, the checkpoint " +
                                  c.hash.substr(0, 16) + "… (the history was rewritten)");
      }
    }
    return e.seq < max_wanted;
  }));
  for (auto it = wanted.upper_bound(last_seq); it != wanted.end(); ++it) {
    report.problems.push_back("line " + std::to_string(it->second.first) + ": seq " +
                              std::to_string(it->first) + ": the chain has only " +
                              std::to_string(last_seq) + " events (events were removed)");
  }
  return report;
}

}  // namespace airlock::audit
