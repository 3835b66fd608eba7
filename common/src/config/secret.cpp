#include "mailsync/config/secret.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "mailsync/aws/secrets_manager.hpp"
#include "mailsync/cli.hpp"
#include "mailsync/util/random.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::config {

namespace {

constexpr std::chrono::milliseconds kLockWait{5000};

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  explicit operator bool() const { return fd_ >= 0; }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A file's trailing newline (LF or CRLF, any number) is not part of the secret.
void drop_line_end(std::string& value) {
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
}

// At most kMaxSecretFileBytes of a regular file. Anything else (a FIFO, which would block, a
// directory, a device, /dev/zero) is refused with a reason rather than read.
std::optional<std::string> read_small_file(int fd, std::string& problem) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    problem = util::errno_text(errno);
    return std::nullopt;
  }
  if (!S_ISREG(info.st_mode)) {
    problem = "not a regular file";
    return std::nullopt;
  }
  std::string value;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = util::errno_text(errno);
      return std::nullopt;
    }
    if (n == 0) return value;
    value.append(buffer, static_cast<size_t>(n));
    if (value.size() > kMaxSecretFileBytes) {
      problem = "larger than " + std::to_string(kMaxSecretFileBytes) + " bytes";
      return std::nullopt;
    }
  }
}

std::optional<std::string> read_small_file(const std::string& path, std::string& problem) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) {
    problem = util::errno_text(errno);
    return std::nullopt;
  }
  return read_small_file(fd.get(), problem);
}

}  // namespace

SecretResolution resolve_secret(std::string_view spec, std::string_view field) {
  const std::string name(field);
  if (spec.starts_with("env:")) {
    const std::string variable(spec.substr(4));
    // The process environment, else a key merged in from AWS_SECRETS_MANAGER_SECRET_IDS.
    const std::optional<std::string> value =
        variable.empty() ? std::nullopt : cli::env(variable.c_str());
    if (!value)
      return {
          std::nullopt,
          name + ": environment variable " + variable + " (from env:" + variable + ") is not set",
          {}};
    if (const auto origin = cli::env_origin(variable.c_str()))
      return {Secret(*value, Secret::Source::kAwsSecretsManager, *origin), {}, {}};
    return {Secret(*value, Secret::Source::kEnv, "env:" + variable), {}, {}};
  }
  if (spec.starts_with("aws-sm:")) {
    const auto ref = parse_store_ref(spec);
    if (!ref)
      return {std::nullopt, name + ": '" + std::string(spec) + "' is not aws-sm:SECRET_ID#KEY", {}};
    try {
      std::string value = secret_store()->read(ref->id, ref->key);
      if (value.empty())
        return {
            std::nullopt, name + ": key " + ref->key + " of secret " + ref->id + " is empty", {}};
      return {
          Secret(std::move(value), Secret::Source::kAwsSecretsManager, std::string(spec)), {}, {}};
    } catch (const std::exception& e) {
      return {std::nullopt, name + ": " + e.what(), {}};
    }
  }
  if (spec.starts_with("file:")) {
    const std::string path(spec.substr(5));
    std::string problem;
    std::optional<std::string> read = path.empty() ? std::nullopt : read_small_file(path, problem);
    if (!read)
      return {std::nullopt,
              name + ": cannot read " + path + " (from file:" + path +
                  "): " + (path.empty() ? "no path given" : problem),
              {}};
    std::string value = std::move(*read);
    drop_line_end(value);
    if (value.empty()) return {std::nullopt, name + ": " + path + " is empty", {}};
    SecretResolution result{
        Secret(std::move(value), Secret::Source::kFile, "file:" + path), {}, {}};
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", info.st_mode & 07777);
      result.warning =
          name + ": " + path + " is readable by others (mode " + mode + "); chmod 600 " + path;
    }
    return result;
  }
  if (spec.empty()) return {std::nullopt, name + " is empty", {}};
  return {Secret(std::string(spec), Secret::Source::kInline, "inline"), {}, {}};
}

SecretWrite write_secret_file(const std::filesystem::path& path, std::string_view value,
                              std::optional<std::string_view> expected) {
  // Writers of one file take turns on a lock on the file itself. The rename replaces the inode, so
  // a writer that waited on the old one opens the path again and tries anew.
  FileDescriptor current;
  const auto give_up = std::chrono::steady_clock::now() + kLockWait;
  for (;;) {
    current = FileDescriptor(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!current) break;  // a new file: nothing to take turns on, nothing to compare
    if (::flock(current.get(), LOCK_EX | LOCK_NB) == 0) {
      struct stat locked {
      }, named{};
      if (::fstat(current.get(), &locked) == 0 && ::stat(path.c_str(), &named) == 0 &&
          locked.st_ino == named.st_ino && locked.st_dev == named.st_dev)
        break;
    } else if (errno != EWOULDBLOCK && errno != EINTR) {
      break;  // a file system without locks: write as before
    }
    if (std::chrono::steady_clock::now() >= give_up)
      throw std::runtime_error("cannot replace " + path.string() +
                               ": another process holds it for " +
                               std::to_string(kLockWait.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (current && expected) {
    std::string problem;
    std::optional<std::string> held = read_small_file(current.get(), problem);
    if (held) {
      drop_line_end(*held);
      if (*held != *expected && *held != value) return SecretWrite::kKeptOther;
    }
  }

  // An unpredictable name, created here and nowhere else: O_EXCL | O_NOFOLLOW refuse a file or a
  // symbolic link someone placed at that name beforehand.
  const std::filesystem::path temporary =
      path.string() + ".tmp-" + std::to_string(::getpid()) + "-" + util::random_hex(16);
  const FileDescriptor fd(
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd)
    throw std::runtime_error("cannot write " + temporary.string() + ": " + util::errno_text(errno));
  bool ok = ::fchmod(fd.get(), 0600) == 0;
  std::string_view rest = value;
  while (ok && !rest.empty()) {
    const ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n <= 0)
      ok = false;
    else
      rest.remove_prefix(static_cast<size_t>(n));
  }
  ok = ok && ::write(fd.get(), "\n", 1) == 1 && ::fsync(fd.get()) == 0;
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot replace " + path.string() + ": " + util::errno_text(error));
  }
  // Make the rename durable too.
  const FileDescriptor dir(::open(path.parent_path().empty() ? "." : path.parent_path().c_str(),
                                  O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) ::fsync(dir.get());
  return SecretWrite::kWritten;
}

std::optional<SecretStoreRef> parse_store_ref(std::string_view spec) {
  if (!spec.starts_with("aws-sm:")) return std::nullopt;
  spec.remove_prefix(7);
  const size_t hash = spec.rfind('#');
  if (hash == std::string_view::npos || hash == 0 || hash + 1 == spec.size()) return std::nullopt;
  return SecretStoreRef{std::string(spec.substr(0, hash)), std::string(spec.substr(hash + 1))};
}

namespace {

std::mutex store_mutex;
std::shared_ptr<SecretStore>& installed_store() {
  static std::shared_ptr<SecretStore> store;
  return store;
}

}  // namespace

void install_secret_store(std::shared_ptr<SecretStore> store) {
  const std::lock_guard lock(store_mutex);
  installed_store() = std::move(store);
}

std::shared_ptr<SecretStore> secret_store() {
  const std::lock_guard lock(store_mutex);
  if (!installed_store()) installed_store() = aws::secrets_manager_from_env();
  return installed_store();
}

std::optional<SecretWrite> write_back(const Secret& secret, std::string_view value,
                                      std::optional<std::string_view> expected) {
  if (const auto path = secret.file()) return write_secret_file(*path, value, expected);
  if (secret.source() != Secret::Source::kAwsSecretsManager) return std::nullopt;
  const auto ref = parse_store_ref(secret.reference());
  if (!ref) return std::nullopt;
  return secret_store()->write(ref->id, ref->key, value, expected);
}

}  // namespace mailsync::config
