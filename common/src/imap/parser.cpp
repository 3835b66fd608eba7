// The IMAP response parser (RFC 3501 section 9, with UIDPLUS, ESEARCH and X-GM-MSGID items):
// the grammar over one complete response (Cursor and the parse_* functions), then the framer that
// finds where a response ends across CRLF and literals (parse_response, ResponseParser).
// Over 400 lines on purpose, for now: the framer and the grammar share the literal and atom
// helpers at the top, and the fuzz target builds this one file; the seam is the "framing" line
// below if it is ever split (parser_framer.cpp / parser_grammar.cpp with a detail header).

#include "mailsync/imap/parser.hpp"

#include <algorithm>
#include <cstring>

#include "mailsync/util/strings.hpp"

namespace mailsync::imap {

std::string_view to_string(Status status) {
  switch (status) {
    case Status::kOk:
      return "OK";
    case Status::kNo:
      return "NO";
    case Status::kBad:
      return "BAD";
    case Status::kPreauth:
      return "PREAUTH";
    case Status::kBye:
      return "BYE";
  }
  return "?";
}

namespace {

bool is_digit(int c) {
  return c >= '0' && c <= '9';
}

// ATOM-CHAR: any CHAR except atom-specials (RFC 3501 section 9). 8-bit bytes are accepted, as
// servers with UTF8=ACCEPT send them; CTLs, SP and specials end an atom.
bool is_atom_char(int c) {
  if (c < 0x21 || c == 0x7f) return false;
  return std::strchr("(){%*\"\\]", c) == nullptr;
}

// A short, printable excerpt of the input for error messages.
std::string excerpt(std::string_view input, size_t at) {
  std::string out;
  for (size_t i = at; i < input.size() && out.size() < 24; ++i) {
    const auto c = static_cast<unsigned char>(input[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out.empty() ? "end of input" : "\"" + out + "\"";
}

// Literal header "{123}" / "{123+}" / "~{123}" ending at `end` (exclusive, just before CRLF):
// the size, or nullopt when the text does not end with one.
std::optional<uint64_t> literal_size_before(std::string_view text, size_t end, size_t begin) {
  if (end <= begin || text[end - 1] != '}') return std::nullopt;
  size_t i = end - 1;
  if (i > begin && text[i - 1] == '+') --i;  // LITERAL+ form, tolerated
  size_t digits_end = i;
  while (i > begin && is_digit(text[i - 1])) --i;
  if (i == digits_end || i == begin || text[i - 1] != '{') return std::nullopt;
  if (digits_end - i > 19) throw ParseError("literal size has too many digits");
  uint64_t size = 0;
  for (size_t k = i; k < digits_end; ++k) size = size * 10 + static_cast<uint64_t>(text[k] - '0');
  return size;
}

// ---- grammar over one complete response ------------------------------------------------------

class Cursor {
 public:
  Cursor(std::string_view input, const std::vector<size_t>& streamed_at,
         const std::vector<uint64_t>& streamed_sizes, const ParserLimits& limits)
      : in_(input), streamed_at_(streamed_at), streamed_sizes_(streamed_sizes), limits_(limits) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError(what + " at byte " + std::to_string(pos_) + " (" + excerpt(in_, pos_) + ")");
  }
  int peek() const { return pos_ < in_.size() ? static_cast<unsigned char>(in_[pos_]) : -1; }
  bool consume(char c) {
    if (peek() != static_cast<unsigned char>(c)) return false;
    ++pos_;
    return true;
  }
  void expect(char c, const char* what) {
    if (!consume(c)) fail(std::string("expected ") + what);
  }
  void sp() { expect(' ', "a space"); }
  bool at_crlf() const { return in_.substr(pos_, 2) == "\r\n"; }
  void crlf() {
    if (!at_crlf()) fail("expected the end of the line");
    pos_ += 2;
  }
  size_t pos() const { return pos_; }

  std::string atom(const char* what = "an atom") {
    const size_t begin = pos_;
    while (is_atom_char(peek())) ++pos_;
    if (pos_ == begin) fail(std::string("expected ") + what);
    return std::string(in_.substr(begin, pos_ - begin));
  }

  // A FETCH item name: atom chars up to "[" (which is an ATOM-CHAR, but starts the section here).
  std::string item_name() {
    const size_t begin = pos_;
    while (is_atom_char(peek()) && peek() != '[') ++pos_;
    if (pos_ == begin) fail("expected a FETCH item name");
    return std::string(in_.substr(begin, pos_ - begin));
  }

  // ASTRING-CHAR adds "]" (RFC 3501 section 9).
  std::string astring() {
    if (peek() == '"' || peek() == '{' || peek() == '~') return string();
    const size_t begin = pos_;
    while (is_atom_char(peek()) || peek() == ']') ++pos_;
    if (pos_ == begin) fail("expected an astring");
    return std::string(in_.substr(begin, pos_ - begin));
  }

  uint64_t number64() {
    const size_t begin = pos_;
    uint64_t value = 0;
    while (is_digit(peek())) {
      const auto digit = static_cast<uint64_t>(peek() - '0');
      if (value > (UINT64_MAX - digit) / 10) fail("number too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == begin) fail("expected a number");
    return value;
  }
  uint32_t number32() {
    const size_t begin = pos_;
    const uint64_t value = number64();
    if (value > UINT32_MAX) {
      pos_ = begin;
      fail("number exceeds 32 bits");
    }
    return static_cast<uint32_t>(value);
  }

  std::string quoted() {
    expect('"', "a quoted string");
    std::string out;
    for (;;) {
      const int c = peek();
      if (c < 0 || c == '\r' || c == '\n') fail("unterminated quoted string");
      ++pos_;
      if (c == '"') return out;
      if (c == '\\') {
        const int escaped = peek();
        if (escaped != '"' && escaped != '\\') fail("bad escape in quoted string");
        ++pos_;
        out += static_cast<char>(escaped);
      } else {
        out += static_cast<char>(c);
      }
    }
  }

  struct Literal {
    std::string bytes;
    bool streamed = false;
    uint64_t size = 0;
  };
  Literal literal() {
    consume('~');  // literal8 (RFC 3516)
    expect('{', "a literal");
    const uint64_t size = number64();
    consume('+');
    expect('}', "the end of a literal size");
    crlf();
    const auto streamed = std::find(streamed_at_.begin(), streamed_at_.end(), pos_);
    if (streamed != streamed_at_.end())
      return {{}, true, streamed_sizes_[static_cast<size_t>(streamed - streamed_at_.begin())]};
    if (size > in_.size() - pos_) fail("literal runs past the response");
    Literal result{std::string(in_.substr(pos_, size)), false, size};
    pos_ += size;
    return result;
  }

  std::string string() {
    if (peek() == '"') return quoted();
    return literal().bytes;
  }

  bool nil() {
    if (in_.size() - pos_ >= 3 && util::ascii_upper(in_.substr(pos_, 3)) == "NIL" &&
        !is_atom_char(peek_at(pos_ + 3))) {
      pos_ += 3;
      return true;
    }
    return false;
  }

  // "(" [flag *(SP flag)] ")" where a flag is "\"atom, "\*" or a keyword atom.
  std::vector<std::string> flag_list() {
    expect('(', "a parenthesised list");
    std::vector<std::string> flags;
    while (!consume(')')) {
      if (!flags.empty()) sp();
      std::string flag;
      if (consume('\\')) {
        flag = "\\" + (consume('*') ? std::string("*") : atom("a flag"));
      } else {
        flag = atom("a flag");
      }
      flags.push_back(std::move(flag));
    }
    return flags;
  }

  // Any value: atom, number, string, NIL or a nested list; for items this client does not read
  // (ENVELOPE, BODYSTRUCTURE, X-GM-LABELS ...).
  void skip_value(int depth) {
    if (depth > limits_.max_depth)
      fail("lists nested deeper than " + std::to_string(limits_.max_depth));
    const int c = peek();
    if (c == '(') {
      ++pos_;
      bool first = true;
      while (!consume(')')) {
        if (!first) sp();
        first = false;
        skip_value(depth + 1);
      }
    } else if (c == '"' || c == '{' || c == '~') {
      string();
    } else if (c == '\\') {
      ++pos_;
      if (!consume('*')) atom();
    } else {
      // atoms with brackets, such as BODY[HEADER.FIELDS (A B)] inside BODYSTRUCTURE extensions
      const size_t begin = pos_;
      while (is_atom_char(peek()) || peek() == ']' || peek() == '[') ++pos_;
      if (pos_ == begin) fail("expected a value");
    }
  }

  std::string rest_of_line() {
    const size_t end = in_.find("\r\n", pos_);
    if (end == std::string_view::npos) fail("expected the end of the line");
    std::string text(in_.substr(pos_, end - pos_));
    pos_ = end;
    return text;
  }

  bool done() const { return pos_ == in_.size(); }

 private:
  int peek_at(size_t at) const {
    return at < in_.size() ? static_cast<unsigned char>(in_[at]) : -1;
  }

  std::string_view in_;
  size_t pos_ = 0;
  const std::vector<size_t>& streamed_at_;
  const std::vector<uint64_t>& streamed_sizes_;
  const ParserLimits& limits_;
};

uint32_t parse_uint32(std::string_view text, Cursor& at) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 10) at.fail("expected a 32-bit number");
  for (const char c : text) {
    if (!is_digit(c)) at.fail("expected a 32-bit number");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > UINT32_MAX) at.fail("number exceeds 32 bits");
  return static_cast<uint32_t>(value);
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    const size_t begin = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > begin) words.emplace_back(text.substr(begin, i - begin));
  }
  return words;
}

// "[" code "]": the name and raw text, then the codes this client acts on.
ResponseCode parse_code(Cursor& c) {
  c.expect('[', "a response code");
  ResponseCode code;
  code.name = util::ascii_upper(c.atom("a response code name"));
  if (c.consume(' ')) {
    // Text up to the closing bracket; PERMANENTFLAGS and BADCHARSET carry parenthesised lists.
    std::string text;
    while (c.peek() != ']') {
      if (c.peek() < 0 || c.peek() == '\r' || c.peek() == '\n')
        c.fail("unterminated response code");
      text += static_cast<char>(c.peek());
      c.consume(static_cast<char>(c.peek()));
    }
    code.text = std::move(text);
  }
  c.expect(']', "the end of the response code");
  const auto words = split_words(code.text);
  if (code.name == "UIDVALIDITY" || code.name == "UIDNEXT" || code.name == "UNSEEN") {
    if (words.size() != 1) c.fail(code.name + " needs one number");
    code.number = parse_uint32(words[0], c);
  } else if (code.name == "APPENDUID") {
    if (words.size() != 2) c.fail("APPENDUID needs a UIDVALIDITY and a UID set");
    code.append_uidvalidity = parse_uint32(words[0], c);
    code.append_uids = words[1];
  } else if (code.name == "COPYUID") {
    if (words.size() != 3) c.fail("COPYUID needs a UIDVALIDITY and two UID sets");
    code.copy_uidvalidity = parse_uint32(words[0], c);
    code.copy_source_uids = words[1];
    code.copy_dest_uids = words[2];
  } else if (code.name == "CAPABILITY") {
    for (const auto& word : words) code.capabilities.push_back(util::ascii_upper(word));
  } else if (code.name == "PERMANENTFLAGS") {
    std::string inner = code.text;
    if (!inner.empty() && inner.front() == '(') inner.erase(0, 1);
    if (!inner.empty() && inner.back() == ')') inner.pop_back();
    code.flags = split_words(inner);
  }
  return code;
}

StatusResponse parse_status(Cursor& c, std::string tag, std::string_view keyword) {
  StatusResponse status;
  status.tag = std::move(tag);
  if (keyword == "OK")
    status.status = Status::kOk;
  else if (keyword == "NO")
    status.status = Status::kNo;
  else if (keyword == "BAD")
    status.status = Status::kBad;
  else if (keyword == "PREAUTH")
    status.status = Status::kPreauth;
  else
    status.status = Status::kBye;
  if (c.consume(' ')) {
    if (c.peek() == '[') {
      status.code = parse_code(c);
      c.consume(' ');
    }
    status.text = c.rest_of_line();
  }
  return status;
}

FetchData parse_fetch(Cursor& c, uint32_t seq) {
  FetchData fetch;
  fetch.seq = seq;
  c.sp();
  c.expect('(', "the FETCH item list");
  bool first = true;
  while (!c.consume(')')) {
    if (!first) c.sp();
    first = false;
    std::string name = util::ascii_upper(c.item_name());
    std::string section;
    bool has_section = false;
    if (c.consume('[')) {  // BODY[...] / BINARY[...]: section up to "]", then an optional <origin>
      has_section = true;
      while (c.peek() != ']') {
        if (c.peek() < 0 || c.peek() == '\r' || c.peek() == '\n')
          c.fail("unterminated body section");
        section += static_cast<char>(c.peek());
        c.consume(static_cast<char>(c.peek()));
      }
      c.expect(']', "the end of the body section");
      if (c.consume('<')) {
        c.number64();
        c.expect('>', "the end of the partial origin");
      }
    }
    c.sp();
    if (name == "UID") {
      fetch.uid = c.number32();
    } else if (name == "FLAGS") {
      fetch.flags = c.flag_list();
    } else if (name == "RFC822.SIZE") {
      fetch.rfc822_size = c.number64();
    } else if (name == "INTERNALDATE") {
      fetch.internaldate = c.quoted();
    } else if (name == "X-GM-MSGID") {
      fetch.gm_msgid = c.number64();
    } else if (name == "MODSEQ") {
      c.expect('(', "MODSEQ's list");
      fetch.modseq = c.number64();
      c.expect(')', "the end of MODSEQ's list");
    } else if (((name == "BODY" || name == "BINARY" || name == "BODY.PEEK") && has_section) ||
               name == "RFC822" || name == "RFC822.TEXT" || name == "RFC822.HEADER") {
      std::string bytes;
      bool streamed = false;
      uint64_t size = 0;
      const bool nil = c.nil();
      if (!nil) {
        if (c.peek() == '"') {
          bytes = c.quoted();
          size = bytes.size();
        } else {
          auto literal = c.literal();
          bytes = std::move(literal.bytes);
          streamed = literal.streamed;
          size = literal.size;
        }
      }
      if (!fetch.body_section) {  // the first body item is the one reported
        fetch.body_section = has_section ? section : name;
        fetch.body_streamed = streamed;
        fetch.body_size = size;
        fetch.body_nil = nil;
        if (!streamed && !nil) fetch.body = std::move(bytes);
      }
    } else {
      c.skip_value(1);  // ENVELOPE, BODYSTRUCTURE, X-GM-LABELS, X-GM-THRID, ...
    }
  }
  return fetch;
}

ListData parse_list(Cursor& c) {
  ListData list;
  c.sp();
  list.attributes = c.flag_list();
  c.sp();
  if (!c.nil()) {
    const std::string delimiter = c.quoted();
    if (delimiter.size() != 1) c.fail("a LIST delimiter is one character");
    list.delimiter = delimiter[0];
  }
  c.sp();
  list.name = c.astring();
  while (c.consume(' ')) c.skip_value(1);  // LIST-EXTENDED data
  return list;
}

SearchData parse_search(Cursor& c) {
  SearchData search;
  while (c.consume(' ')) {
    if (c.peek() == '(') {  // (MODSEQ n) of CONDSTORE
      c.skip_value(1);
      continue;
    }
    search.numbers.push_back(c.number32());
  }
  return search;
}

ESearchData parse_esearch(Cursor& c) {
  ESearchData esearch;
  if (c.consume(' ')) {
    if (c.consume('(')) {  // search-correlator: (TAG "A1")
      if (util::ascii_upper(c.atom()) != "TAG") c.fail("expected TAG in the ESEARCH correlator");
      c.sp();
      esearch.tag = c.string();
      c.expect(')', "the end of the ESEARCH correlator");
      if (!c.consume(' ')) return esearch;
    }
    for (bool more = true; more; more = c.consume(' ')) {
      const std::string name = util::ascii_upper(c.atom("an ESEARCH return item"));
      if (name == "UID") {
        esearch.uid = true;
        continue;
      }
      c.sp();
      if (name == "MIN")
        esearch.min = c.number32();
      else if (name == "MAX")
        esearch.max = c.number32();
      else if (name == "COUNT")
        esearch.count = c.number32();
      else if (name == "ALL")
        esearch.all = c.atom("a sequence set");
      else
        c.skip_value(1);
    }
  }
  return esearch;
}

Response parse_untagged(Cursor& c) {
  if (is_digit(c.peek())) {
    const uint32_t number = c.number32();
    c.sp();
    const std::string keyword = util::ascii_upper(c.atom("a message data keyword"));
    if (keyword == "FETCH") return parse_fetch(c, number);
    if (keyword == "EXISTS") return CountData{CountData::Kind::kExists, number};
    if (keyword == "RECENT") return CountData{CountData::Kind::kRecent, number};
    if (keyword == "EXPUNGE") return CountData{CountData::Kind::kExpunge, number};
    c.fail("unknown message data " + keyword);
  }
  const std::string keyword = util::ascii_upper(c.atom("an untagged response keyword"));
  if (keyword == "OK" || keyword == "NO" || keyword == "BAD" || keyword == "PREAUTH" ||
      keyword == "BYE")
    return parse_status(c, "*", keyword);
  if (keyword == "CAPABILITY") {
    CapabilityData capability;
    while (c.consume(' '))
      capability.capabilities.push_back(util::ascii_upper(c.atom("a capability")));
    return capability;
  }
  if (keyword == "LIST" || keyword == "LSUB") return parse_list(c);
  if (keyword == "SEARCH") return parse_search(c);
  if (keyword == "ESEARCH") return parse_esearch(c);
  if (keyword == "FLAGS") {
    c.sp();
    return FlagsData{c.flag_list()};
  }
  OtherData other{keyword, {}};
  if (c.consume(' ')) {
    // Unknown responses may carry literals (e.g. ID, METADATA): walk values to the line's end.
    const size_t begin = c.pos();
    while (!c.at_crlf()) {
      c.skip_value(1);
      if (!c.at_crlf()) c.sp();
    }
    other.text = std::to_string(c.pos() - begin) + " bytes";
  }
  return other;
}

Response parse_complete(std::string_view input, const std::vector<size_t>& streamed_at,
                        const std::vector<uint64_t>& streamed_sizes, const ParserLimits& limits) {
  Cursor c(input, streamed_at, streamed_sizes, limits);
  Response response;
  if (c.consume('+')) {
    c.consume(' ');
    response = Continuation{c.rest_of_line()};
  } else if (c.consume('*')) {
    c.sp();
    response = parse_untagged(c);
  } else {
    std::string tag = c.atom("a tag");
    c.sp();
    const std::string keyword = util::ascii_upper(c.atom("OK, NO or BAD"));
    if (keyword != "OK" && keyword != "NO" && keyword != "BAD")
      c.fail("a tagged response must be OK, NO or BAD");
    response = parse_status(c, std::move(tag), keyword);
  }
  c.crlf();
  if (!c.done()) c.fail("trailing bytes after the response");
  return response;
}

}  // namespace

// ---- framing -----------------------------------------------------------------------------------

ParseOutcome parse_response(std::string_view input, const ParserLimits& limits) {
  size_t cursor = 0;
  size_t text_bytes = 0;
  size_t literal_bytes = 0;
  for (;;) {
    const size_t line_end = input.find("\r\n", cursor);
    if (line_end == std::string_view::npos) {
      if (text_bytes + (input.size() - cursor) > limits.max_line)
        throw ParseError("response line exceeds " + std::to_string(limits.max_line) + " bytes");
      return {};
    }
    text_bytes += line_end + 2 - cursor;
    if (text_bytes > limits.max_line)
      throw ParseError("response line exceeds " + std::to_string(limits.max_line) + " bytes");
    const auto size = literal_size_before(input, line_end, cursor);
    cursor = line_end + 2;
    if (!size) {
      static const std::vector<size_t> no_streams;
      static const std::vector<uint64_t> no_sizes;
      return {ParseOutcome::Kind::kDone, cursor,
              parse_complete(input.substr(0, cursor), no_streams, no_sizes, limits)};
    }
    if (*size > limits.max_literal)
      throw ParseError("literal of " + std::to_string(*size) + " bytes exceeds the limit of " +
                       std::to_string(limits.max_literal));
    literal_bytes += *size;
    if (literal_bytes + text_bytes > limits.max_buffered)
      throw ParseError("response exceeds " + std::to_string(limits.max_buffered) + " bytes");
    if (input.size() - cursor < *size) return {};
    cursor += *size;
  }
}

ResponseParser::ResponseParser(ParserLimits limits) : limits_(limits) {}

void ResponseParser::fail(const std::string& message) {
  failed_ = true;
  throw ParseError(message);
}

void ResponseParser::feed(std::string_view bytes) {
  if (failed_) throw ParseError("the parser failed earlier; the connection must be closed");
  buffer_.append(bytes);
  scan();
}

std::optional<Response> ResponseParser::next() {
  if (ready_.empty()) return std::nullopt;
  Response response = std::move(ready_.front());
  ready_.pop_front();
  return response;
}

void ResponseParser::scan() {
  for (;;) {
    if (literal_left_ > 0) {
      const size_t available = buffer_.size() - cursor_;
      const auto take = static_cast<size_t>(std::min<uint64_t>(literal_left_, available));
      if (take == 0) break;
      if (literal_streamed_) {
        sink_->data(literal_seq_, std::string_view(buffer_).substr(cursor_, take));
        buffer_.erase(cursor_, take);
      } else {
        cursor_ += take;
      }
      literal_left_ -= take;
      if (literal_left_ == 0 && literal_streamed_) sink_->end();
      continue;
    }

    // Search only what arrived since the last search of this line (less a CR it may end with).
    const size_t from = cursor_ + line_searched_;
    const size_t line_end = buffer_.find("\r\n", from);
    bytes_searched_ += (line_end == std::string::npos ? buffer_.size() : line_end + 2) - from;
    if (line_end == std::string::npos) {
      line_searched_ = buffer_.size() - cursor_;
      if (buffer_.ends_with('\r')) --line_searched_;
      if (text_bytes_ + (buffer_.size() - cursor_) > limits_.max_line)
        fail("response line exceeds " + std::to_string(limits_.max_line) + " bytes");
      break;
    }
    line_searched_ = 0;
    text_bytes_ += line_end + 2 - cursor_;
    if (text_bytes_ > limits_.max_line)
      fail("response line exceeds " + std::to_string(limits_.max_line) + " bytes");
    std::optional<uint64_t> size;
    try {
      size = literal_size_before(buffer_, line_end, cursor_);
    } catch (const ParseError& e) {
      fail(e.what());
    }
    cursor_ = line_end + 2;

    if (!size) {  // the response is complete
      const std::string_view text = std::string_view(buffer_).substr(start_, cursor_ - start_);
      try {
        ready_.push_back(parse_complete(text, streamed_at_, streamed_sizes_, limits_));
      } catch (const ParseError& e) {
        fail(e.what());
      }
      start_ = cursor_;
      text_bytes_ = 0;
      streamed_at_.clear();
      streamed_sizes_.clear();
      if (start_ > (1u << 16) && start_ * 2 > buffer_.size()) {  // compact now and then
        buffer_.erase(0, start_);
        cursor_ -= start_;
        start_ = 0;
      }
      continue;
    }

    // A literal follows. Stream it when it is a message body of a FETCH and big enough.
    const std::string_view response = std::string_view(buffer_).substr(start_, line_end - start_);
    bool stream = false;
    uint32_t seq = 0;
    if (sink_ != nullptr && *size >= limits_.stream_threshold && response.starts_with("* ")) {
      size_t i = 2;
      uint64_t number = 0;
      while (i < response.size() && is_digit(response[i]) && number <= UINT32_MAX)
        number = number * 10 + static_cast<uint64_t>(response[i++] - '0');
      const bool is_fetch =
          i > 2 && number <= UINT32_MAX && util::ascii_upper(response.substr(i, 7)) == " FETCH ";
      // The item just before the literal: "BODY[...]", "BODY[...]<n>", "BINARY[...]" or "RFC822".
      size_t item_end = response.rfind('{');
      if (item_end > 0 && response[item_end - 1] == '~') --item_end;
      std::string_view before = response.substr(0, item_end);
      if (before.ends_with(' ')) before.remove_suffix(1);
      if (before.ends_with('>') && before.rfind('<') != std::string_view::npos)
        before = before.substr(0, before.rfind('<'));
      const size_t separator = before.find_last_of(" (");
      const std::string item =
          util::ascii_upper(before.substr(separator == std::string_view::npos ? 0 : separator + 1));
      const bool body_item =
          ((item.starts_with("BODY[") || item.starts_with("BINARY[")) && item.ends_with("]")) ||
          item == "RFC822";
      // A section with spaces (HEADER.FIELDS (A B)) is not a whole-message body: keep it buffered.
      stream = is_fetch && body_item;
      seq = static_cast<uint32_t>(number);
    }
    if (stream) {
      if (*size > limits_.max_streamed_literal)
        fail("message body of " + std::to_string(*size) + " bytes exceeds the limit of " +
             std::to_string(limits_.max_streamed_literal));
      streamed_at_.push_back(cursor_ - start_);
      streamed_sizes_.push_back(*size);
      literal_streamed_ = true;
      literal_seq_ = seq;
      sink_->begin(seq, *size);
      if (*size == 0) sink_->end();
    } else {
      if (*size > limits_.max_literal)
        fail("literal of " + std::to_string(*size) + " bytes exceeds the limit of " +
             std::to_string(limits_.max_literal));
      if (cursor_ - start_ + *size > limits_.max_buffered)
        fail("response exceeds " + std::to_string(limits_.max_buffered) + " bytes");
      literal_streamed_ = false;
    }
    literal_left_ = *size;
  }
}

std::vector<uint32_t> expand_sequence_set(std::string_view set, size_t limit) {
  std::vector<uint32_t> out;
  auto number = [](std::string_view text) {
    if (text.empty() || text.size() > 10) throw std::invalid_argument("bad number in sequence set");
    uint64_t value = 0;
    for (const char c : text) {
      if (!is_digit(c)) throw std::invalid_argument("bad number in sequence set");
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (value == 0 || value > UINT32_MAX)
      throw std::invalid_argument("sequence number out of range");
    return static_cast<uint32_t>(value);
  };
  while (!set.empty()) {
    const size_t comma = set.find(',');
    const std::string_view part = set.substr(0, comma);
    const size_t colon = part.find(':');
    uint32_t low = number(part.substr(0, colon));
    uint32_t high = colon == std::string_view::npos ? low : number(part.substr(colon + 1));
    if (low > high) std::swap(low, high);
    if (out.size() + (uint64_t{high} - low + 1) > limit)
      throw std::length_error("sequence set has more than " + std::to_string(limit) + " numbers");
    for (uint64_t n = low; n <= high; ++n) out.push_back(static_cast<uint32_t>(n));
    if (comma == std::string_view::npos) break;
    set.remove_prefix(comma + 1);
    if (set.empty()) throw std::invalid_argument("sequence set ends with a comma");
  }
  return out;
}

}  // namespace mailsync::imap
