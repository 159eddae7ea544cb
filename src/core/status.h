// Status and Result<T>: how every fallible function in libairlock reports failure.
//
// No exception crosses a library boundary (STYLE.md). A Status carries a code that the
// front ends map to exit codes and HTTP statuses, and a message that names the thing that
// failed (file, table, errno or SQLite code).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace airlock {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from the caller: malformed SQL, bad policy, usage (exit 2)
  kNotFound,            // no such action, target, file
  kPermissionDenied,    // authentication or authorization failed (exit 11, audited)
  kFailedPrecondition,  // the action is not in a state that allows this (exit 1)
  kConflict,            // rollback conflicts, effect changed (exit 11)
  kCorruption,          // a store or changeset that does not decode
  kIoError,             // the OS or SQLite failed
  kInternal,
};

const char* StatusCodeName(StatusCode code);  // "invalid argument"
const char* StatusCodeSlug(StatusCode code);  // "invalid_argument": stable, for JSON
// The inverse of StatusCodeSlug; nullopt for an unknown slug.
std::optional<StatusCode> StatusCodeFromSlug(std::string_view slug);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: near "SELEC": syntax error"
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status Annotate(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

#define AIRLOCK_CONCAT_INNER(a, b) a##b
#define AIRLOCK_CONCAT(a, b) AIRLOCK_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): evaluate a Status expression, return it if it failed.
#define RETURN_IF_ERROR(expr)       \
  do {                              \
    ::airlock::Status _st = (expr); \
    if (!_st.ok()) return _st;      \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluate a Result<T>, return its status if it failed,
// otherwise move its value into lhs (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(AIRLOCK_CONCAT(_res_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

}  // namespace airlock
