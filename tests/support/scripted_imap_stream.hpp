#pragma once

// An in-memory net::Stream with a scripted IMAP server behind it, for unit tests of the IMAP client
// (imap::Client::over): the server is a function from one complete command (its tag, the command
// line without literals, and the literals' bytes) to the bytes it answers. Literals follow RFC
// 7888: "{N+}" needs no continuation, "{N}" gets "+ go ahead" first. When the client waits for
// bytes the script does not give, read_some throws kClosed: a test never hangs.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mailsync/net/tls_stream.hpp"

namespace mailsync::testing {

struct ScriptedCommand {
  std::string tag;
  std::string line;  // "APPEND "INBOX" (\Seen) {5+}" ... without the literals' bytes
  std::vector<std::string> literals;
};

class ScriptedImapStream final : public net::Stream {
 public:
  using Server = std::function<std::string(const ScriptedCommand&)>;
  ScriptedImapStream(std::string greeting, Server server);

  size_t read_some(char* buffer, size_t capacity) override;
  void write_all(std::string_view bytes) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override { timeout_ = timeout; }
  std::chrono::milliseconds io_timeout() const override { return timeout_; }
  const std::string& peer() const override { return peer_; }

  // Every command the client sent, in order (shared with the test through a pointer kept
  // before the stream is handed to the client).
  std::vector<ScriptedCommand> commands;
  // When set, every read gives one byte after this long: a server trickling its answer.
  std::chrono::milliseconds trickle{0};
  // When set, the connection breaks once the client has written this many bytes: the write that
  // crosses it throws kClosed (the server saw what came before; its answers stay readable).
  std::optional<size_t> fail_writes_after;

 private:
  void serve();

  Server server_;
  size_t written_ = 0;
  std::string to_client_;
  std::string from_client_;
  ScriptedCommand current_;
  std::chrono::milliseconds timeout_{1000};
  std::string peer_ = "scripted";
};

}  // namespace mailsync::testing
