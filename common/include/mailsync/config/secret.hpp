#pragma once

#include <filesystem>
#include <memory>
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
  enum class Source { kInline, kEnv, kFile, kAwsSecretsManager };
  Secret() = default;
  Secret(std::string value, Source source, std::string reference)
      : value_(std::move(value)), source_(source), reference_(std::move(reference)) {}

  const std::string& reveal() const { return value_; }
  Source source() const { return source_; }
  // "env:NAME", "file:/run/secrets/x", "aws-sm:ID#KEY" or "inline"
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

// A secret field's text: a value, "env:NAME", "file:PATH" or "aws-sm:ID#KEY" (the key KEY of the
// JSON object in AWS Secrets Manager secret ID, read through secret_store()). A file's trailing
// newline is dropped; it must be a regular file of at most kMaxSecretFileBytes (a FIFO or device is
// refused, not read).
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

// "aws-sm:ID#KEY" split at its last '#' (an ARN holds none, a key may not): nullopt when either
// part is empty.
struct SecretStoreRef {
  std::string id;
  std::string key;
};
std::optional<SecretStoreRef> parse_store_ref(std::string_view spec);

// A store of JSON-object secrets: AWS Secrets Manager (aws/secrets_manager.hpp). Errors are
// std::runtime_error naming the secret and the key, never a value.
class SecretStore {
 public:
  virtual ~SecretStore() = default;
  // The key's value (a string; numbers and booleans as their JSON text).
  virtual std::string read(const std::string& id, const std::string& key) = 0;
  // Sets the key, keeping the object's other keys. With `expected`, a compare and swap as for
  // write_secret_file: kKeptOther when the key holds neither `expected` nor `value`.
  virtual SecretWrite write(const std::string& id, const std::string& key, std::string_view value,
                            std::optional<std::string_view> expected) = 0;
  virtual std::string describe() const = 0;  // "AWS Secrets Manager (us-east-1)"
};
// The process's store: the one installed, else AWS Secrets Manager from the environment (region,
// the credential chain, AWS_ENDPOINT_URL_SECRETSMANAGER), made on first use. Throws
// std::runtime_error when the environment cannot make one.
std::shared_ptr<SecretStore> secret_store();
void install_secret_store(std::shared_ptr<SecretStore> store);

// Stores a rotated value where `secret` came from: its file, or its key in the secret store.
// nullopt when the source cannot be written (env, inline). Throws std::runtime_error.
std::optional<SecretWrite> write_back(const Secret& secret, std::string_view value,
                                      std::optional<std::string_view> expected);

}  // namespace mailsync::config
