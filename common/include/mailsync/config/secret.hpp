#pragma once

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace mailsync::config {

// A secret value (refresh token, client secret, password) and where it came from. It prints as
// "<secret env:NAME>", never as its value; code that needs the value calls reveal(), so every use
// is easy to find.
class Secret {
 public:
  enum class Source { kInline, kEnv, kFile };
  Secret() = default;
  Secret(std::string value, Source source, std::string reference)
      : value_(std::move(value)), source_(source), reference_(std::move(reference)) {}

  const std::string& reveal() const { return value_; }
  Source source() const { return source_; }
  // "env:NAME", "file:/run/secrets/x" or "inline"
  const std::string& reference() const { return reference_; }
  std::optional<std::filesystem::path> file() const {
    if (source_ != Source::kFile) return std::nullopt;
    return std::filesystem::path(reference_.substr(5));
  }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
  Source source_ = Source::kInline;
  std::string reference_ = "inline";
};

inline std::ostream& operator<<(std::ostream& out, const Secret& secret) {
  return out << "<secret " << secret.reference() << ">";
}

// A secret field's text: a value, "env:NAME" or "file:PATH". A file's trailing newline is dropped;
// it must be a regular file of at most kMaxSecretFileBytes (a FIFO or device is refused, not read).
inline constexpr size_t kMaxSecretFileBytes = size_t{64} * 1024;
struct SecretResolution {
  std::optional<Secret> secret;
  std::string error;    // unreadable file, unset variable, empty value
  std::string warning;  // a file readable by group or others
};
SecretResolution resolve_secret(std::string_view spec, std::string_view field);

// Writes `value` to `path` atomically (a temporary file of unpredictable name in the same
// directory, created with O_EXCL | O_NOFOLLOW, mode 0600, fsync, rename), so a crash leaves the
// old token or the new one, never half of one. Writers of one file take turns (flock on the file,
// at most 5 s). With `expected` (the value this process rotated from) the write is a compare and
// swap: if the file holds neither `expected` nor `value`, another process stored its own rotation
// first, the file is left as it is and kKeptOther is returned. Throws std::runtime_error naming the
// path (never the value).
enum class SecretWrite { kWritten, kKeptOther };
SecretWrite write_secret_file(const std::filesystem::path& path, std::string_view value,
                              std::optional<std::string_view> expected = std::nullopt);

}  // namespace mailsync::config
