#include "support/scripted_imap_stream.hpp"

#include <thread>

#include <algorithm>
#include <cstring>

namespace mailsync::testing {

ScriptedImapStream::ScriptedImapStream(std::string greeting, Server server)
    : server_(std::move(server)), to_client_(std::move(greeting)) {}

size_t ScriptedImapStream::read_some(char* buffer, size_t capacity) {
  if (to_client_.empty())
    throw net::TransportError(net::TransportErrorKind::kClosed, "the script has nothing more");
  if (trickle.count() > 0) std::this_thread::sleep_for(trickle);
  const size_t n = std::min(trickle.count() > 0 ? size_t{1} : capacity, to_client_.size());
  std::memcpy(buffer, to_client_.data(), n);
  to_client_.erase(0, n);
  return n;
}

void ScriptedImapStream::write_all(std::string_view bytes) {
  if (fail_writes_after && written_ + bytes.size() > *fail_writes_after) {
    from_client_.append(
        bytes.substr(0, *fail_writes_after - std::min(written_, *fail_writes_after)));
    written_ = *fail_writes_after;
    serve();
    throw net::TransportError(net::TransportErrorKind::kClosed, "scripted: connection reset");
  }
  written_ += bytes.size();
  from_client_.append(bytes);
  serve();
}

// Consumes what the client wrote: lines, and the literals they announce at their end.
void ScriptedImapStream::serve() {
  for (;;) {
    const size_t eol = from_client_.find("\r\n");
    if (eol == std::string::npos) return;
    std::string line = from_client_.substr(0, eol);
    // "{N}" or "{N+}" at the end of the line: N bytes of literal follow the CRLF.
    size_t literal = 0;
    bool synchronizing = false;
    if (!line.empty() && line.back() == '}') {
      const size_t open = line.rfind('{');
      if (open != std::string::npos) {
        std::string digits = line.substr(open + 1, line.size() - open - 2);
        synchronizing = digits.empty() || digits.back() != '+';
        if (!synchronizing) digits.pop_back();
        literal = std::stoul(digits);
      }
    }
    if (literal > 0 && from_client_.size() < eol + 2 + literal) {
      if (synchronizing && from_client_.size() == eol + 2) to_client_ += "+ go ahead\r\n";
      return;  // the literal's bytes are not all here yet
    }
    if (current_.tag.empty()) {
      const size_t space = line.find(' ');
      current_.tag = line.substr(0, space);
      current_.line = space == std::string::npos ? "" : line.substr(space + 1);
    } else {
      current_.line += line;
    }
    if (literal > 0) {
      current_.literals.push_back(from_client_.substr(eol + 2, literal));
      from_client_.erase(0, eol + 2 + literal);
      continue;  // the command goes on after the literal
    }
    from_client_.erase(0, eol + 2);
    commands.push_back(current_);
    to_client_ += server_(current_);
    current_ = {};
  }
}

}  // namespace mailsync::testing
