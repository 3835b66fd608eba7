#include "mailsync/config/secret.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mailsync::config {

SecretResolution resolve_secret(std::string_view spec, std::string_view field) {
  const std::string name(field);
  if (spec.starts_with("env:")) {
    const std::string variable(spec.substr(4));
    const char* value = variable.empty() ? nullptr : std::getenv(variable.c_str());
    if (value == nullptr || *value == '\0')
      return {
          std::nullopt,
          name + ": environment variable " + variable + " (from env:" + variable + ") is not set",
          {}};
    return {Secret(value, Secret::Source::kEnv, "env:" + variable), {}, {}};
  }
  if (spec.starts_with("file:")) {
    const std::string path(spec.substr(5));
    std::ifstream in(path, std::ios::binary);
    if (path.empty() || !in)
      return {std::nullopt,
              name + ": cannot read " + path + " (from file:" + path + "): " + std::strerror(errno),
              {}};
    std::stringstream text;
    text << in.rdbuf();
    std::string value = text.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
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

void write_secret_file(const std::filesystem::path& path, std::string_view value) {
  const std::filesystem::path temporary = path.string() + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot write " + temporary.string() + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0;
  std::string_view rest = value;
  while (ok && !rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n <= 0)
      ok = false;
    else
      rest.remove_prefix(static_cast<size_t>(n));
  }
  ok = ok && ::write(fd, "\n", 1) == 1 && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = ok ? errno : saved_errno;
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot replace " + path.string() + ": " + std::strerror(error));
  }
  // Make the rename durable too.
  const int dir =
      ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace mailsync::config
