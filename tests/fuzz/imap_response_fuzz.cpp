// Fuzz target: the IMAP response parser, whole (parse_response) and incremental (ResponseParser
// fed in chunks whose sizes come from the input, with a body sink). Checks that the two agree on
// where the first response ends and that nothing crashes, leaks or grows without bound.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailsync/imap/parser.hpp"

namespace {

class CountingSink : public mailsync::imap::BodySink {
 public:
  void begin(uint32_t, uint64_t) override { open = true; }
  void data(uint32_t, std::string_view bytes) override { total += bytes.size(); }
  void end() override { open = false; }
  bool open = false;
  uint64_t total = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailsync::imap;
  if (size == 0) return 0;
  ParserLimits limits;
  limits.max_line = 1 << 16;
  limits.max_literal = 1 << 16;
  limits.max_buffered = 1 << 18;
  limits.stream_threshold = 16;
  limits.max_depth = 32;
  const size_t step = 1 + data[0] % 17;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  bool whole_done = false;
  try {
    whole_done = parse_response(input, limits).kind == ParseOutcome::Kind::kDone;
  } catch (const ParseError&) {
  }

  ResponseParser parser(limits);
  CountingSink sink;
  parser.set_body_sink(&sink);
  bool incremental_done = false;
  try {
    for (size_t i = 0; i < input.size(); i += step) {
      parser.feed(input.substr(i, step));
      while (parser.next()) incremental_done = true;
    }
  } catch (const ParseError&) {
  }
  // A complete first response for one is a complete first response for the other (streaming
  // only changes where body bytes go), unless the incremental parser failed on a later one.
  if (whole_done && !incremental_done && sink.total == 0) {
    ResponseParser plain(limits);
    try {
      plain.feed(input);
    } catch (const ParseError&) {
      return 0;  // a later response in the input was malformed
    }
    if (!plain.next()) __builtin_trap();
  }
  return 0;
}
