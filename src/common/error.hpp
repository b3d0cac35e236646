// The error type every pg_consistency layer throws. It carries its SQLSTATE so that
// the PostgreSQL boundary can raise it unchanged instead of collapsing it to XX000.
#pragma once

#include <stdexcept>
#include <string>

namespace pgc {

// SQLSTATEs of the public contract (class CS) and the standard ones we use.
namespace sqlstate {
inline constexpr const char* kWrongExpectedVersion = "CS001";
inline constexpr const char* kInvalidArgument = "CS002";
inline constexpr const char* kIllegalTransition = "CS003";
inline constexpr const char* kUnknownObject = "CS004";
inline constexpr const char* kRemoteFailure = "CS005";
inline constexpr const char* kInternal = "XX000";
inline constexpr const char* kOutOfMemory = "53200";
inline constexpr const char* kInsufficientPrivilege = "42501";
inline constexpr const char* kFeatureNotSupported = "0A000";
inline constexpr const char* kObjectInUse = "55006";
}  // namespace sqlstate

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(message),
        code_(std::move(code)),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}

  const std::string& code() const noexcept { return code_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  std::string code_;
  std::string detail_;
  std::string hint_;
};

inline Error invalid_argument(const std::string& message, std::string detail = {}, std::string hint = {}) {
  return Error(sqlstate::kInvalidArgument, message, std::move(detail), std::move(hint));
}

}  // namespace pgc
