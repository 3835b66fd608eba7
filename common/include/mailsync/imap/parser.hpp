#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mailsync/imap/response.hpp"

// The IMAP response parser: pure (bytes in, responses out, no I/O), incremental (feed any split
// of the stream) and bounded (every size the server controls has a limit with a clear error).
// Two layers, as in imap-proto: a framer that finds where a response ends (CRLF, with literals
// {n} / ~{n} spliced in) and a grammar parser over one complete response.
namespace mailsync::imap {

struct ParserLimits {
  size_t max_line = 8 << 20;       // text of one response outside literals (a long SEARCH)
  size_t max_literal = 4 << 20;    // one literal kept in memory
  size_t max_buffered = 64 << 20;  // all of one response kept in memory
  uint64_t max_streamed_literal = 1ull << 30;  // one body streamed to the sink
  size_t stream_threshold = 64 << 10;          // bodies from this size on go to the sink
  int max_depth = 64;                          // nested parenthesised lists
};

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Receives message bodies (BODY[...] / BINARY[...] / RFC822 literals of FETCH responses) while
// they arrive, so a 30 MB message never sits in memory whole. begin() comes with the FETCH's
// sequence number and the body size, data() with the same sequence number, end() when its last
// byte arrived. The FETCH response itself follows from next() with body_streamed set; its UID may
// only be known then, and the next body may already be streaming by the time it is read: key
// everything by the sequence number.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void begin(uint32_t seq, uint64_t size) = 0;
  virtual void data(uint32_t seq, std::string_view bytes) = 0;
  virtual void end() = 0;
};

// One complete response, or how far a buffer is from holding one.
struct ParseOutcome {
  enum class Kind { kDone, kNeedMore } kind = Kind::kNeedMore;
  size_t consumed = 0;  // bytes of the input the response took (kDone)
  std::optional<Response> response;
};

// Parses the first response of `input`, buffering any literal (imap-proto's parse_response).
// Throws ParseError on malformed input or a limit exceeded.
ParseOutcome parse_response(std::string_view input, const ParserLimits& limits = {});

class ResponseParser {
 public:
  explicit ResponseParser(ParserLimits limits = {});

  // Bodies of at least limits.stream_threshold bytes go to `sink` (nullptr: keep them).
  void set_body_sink(BodySink* sink) { sink_ = sink; }

  // Takes the next bytes from the server; body bytes may reach the sink before this returns.
  // Throws ParseError; after that the parser is unusable, as is the connection.
  void feed(std::string_view bytes);

  // The next complete response, in order, or nothing until more bytes are fed.
  std::optional<Response> next();

  // Bytes received but not yet part of a complete response (excluding streamed body bytes).
  size_t pending_bytes() const { return buffer_.size() - start_; }

  // Bytes examined so far while looking for line ends: once per byte received, plus at most one
  // per feed(), however the input is split (a server trickling a long line byte by byte costs
  // linear time, not quadratic). For tests.
  uint64_t bytes_searched() const { return bytes_searched_; }

 private:
  void scan();
  void fail(const std::string& message);

  ParserLimits limits_;
  BodySink* sink_ = nullptr;
  std::string buffer_;        // [start_, end): the current response so far, then unscanned input
  size_t start_ = 0;          // where the current response begins
  size_t cursor_ = 0;         // scanned up to here
  size_t line_searched_ = 0;  // bytes from cursor_ on known to hold no CRLF
  uint64_t bytes_searched_ = 0;
  size_t text_bytes_ = 0;  // text (not literal) bytes of the current response
  uint64_t literal_left_ = 0;
  bool literal_streamed_ = false;
  uint32_t literal_seq_ = 0;         // the FETCH whose body is streaming
  std::vector<size_t> streamed_at_;  // offsets (from start_) where streamed literals were cut out
  std::vector<uint64_t> streamed_sizes_;
  std::deque<Response> ready_;
  bool failed_ = false;
};

}  // namespace mailsync::imap
