#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

// IMAP server responses as data (RFC 3501 section 7, RFC 9051 section 7): what the parser
// produces and the client consumes. Names follow the grammar.
namespace mailsync::imap {

enum class Status { kOk, kNo, kBad, kPreauth, kBye };
std::string_view to_string(Status status);

// resp-text-code: "[" atom [SP text] "]". The common codes are parsed into fields; every code
// keeps its name (upper-cased) and the raw text after it.
struct ResponseCode {
  std::string name;                            // UIDVALIDITY, APPENDUID, TRYCREATE, ...
  std::string text;                            // raw arguments after the name, if any
  std::optional<uint32_t> number;              // UIDVALIDITY, UIDNEXT, UNSEEN
  std::optional<uint32_t> append_uidvalidity;  // APPENDUID (RFC 4315)
  std::optional<std::string> append_uids;      // APPENDUID: one uid or a set (MULTIAPPEND)
  std::optional<uint32_t> copy_uidvalidity;    // COPYUID
  std::optional<std::string> copy_source_uids;
  std::optional<std::string> copy_dest_uids;
  std::vector<std::string> capabilities;  // CAPABILITY
  std::vector<std::string> flags;         // PERMANENTFLAGS
};

// Tagged or untagged OK / NO / BAD / PREAUTH / BYE.
struct StatusResponse {
  std::string tag;  // "*" when untagged
  Status status = Status::kOk;
  std::optional<ResponseCode> code;
  std::string text;
};

// "+ text" (or "+ base64" during AUTHENTICATE).
struct Continuation {
  std::string text;
};

struct CapabilityData {
  std::vector<std::string> capabilities;  // upper-cased
};

// * LIST (\HasNoChildren) "/" "INBOX"
struct ListData {
  std::vector<std::string> attributes;
  std::optional<char> delimiter;  // NIL: flat namespace
  std::string name;               // as sent (modified UTF-7); see utf7.hpp
};

// * SEARCH 2 84 882
struct SearchData {
  std::vector<uint32_t> numbers;
};

// * ESEARCH (TAG "A282") UID MIN 2 COUNT 3 ALL 2,10:11 (RFC 4731)
struct ESearchData {
  std::optional<std::string> tag;
  bool uid = false;
  std::optional<uint32_t> min;
  std::optional<uint32_t> max;
  std::optional<uint32_t> count;
  std::optional<std::string> all;  // a sequence set; expand with expand_sequence_set()
};

// * 12 FETCH (UID 4827313 FLAGS (\Seen) RFC822.SIZE 44827 INTERNALDATE "..." BODY[] {44827} ...)
struct FetchData {
  uint32_t seq = 0;
  std::optional<uint32_t> uid;
  std::optional<std::vector<std::string>> flags;
  std::optional<uint64_t> rfc822_size;
  std::optional<std::string> internaldate;
  std::optional<uint64_t> gm_msgid;  // X-GM-MSGID (Gmail, X-GM-EXT-1)
  std::optional<uint64_t> modseq;    // MODSEQ (CONDSTORE)
  // BODY[section]<origin> / BINARY[section] / RFC822: the first one in the response.
  std::optional<std::string> body_section;  // "" for BODY[]
  std::optional<std::string> body;          // the bytes, when buffered (not for NIL)
  bool body_streamed = false;               // the bytes went to the parser's body sink instead
  // "BODY[] NIL": the server has no bytes to give (Gmail, for a message it cannot serve). Not a
  // message of zero bytes: no body reaches a FetchSink.
  bool body_nil = false;
  uint64_t body_size = 0;  // bytes of the body, buffered or streamed
};

// * 23 EXISTS / * 1 RECENT / * 44 EXPUNGE
struct CountData {
  enum class Kind { kExists, kRecent, kExpunge };
  Kind kind = Kind::kExists;
  uint32_t number = 0;
};

// * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
struct FlagsData {
  std::vector<std::string> flags;
};

// Any other untagged response (ENABLED, ID, STATUS, NAMESPACE, ...): its keyword and raw text.
struct OtherData {
  std::string keyword;
  std::string text;
};

using Response = std::variant<StatusResponse, Continuation, CapabilityData, ListData, SearchData,
                              ESearchData, FetchData, CountData, FlagsData, OtherData>;

// "1:3,7,10:12" -> 1 2 3 7 10 11 12. Throws std::invalid_argument on a malformed set and
// std::length_error when it would yield more than `limit` numbers ("*" is not allowed).
std::vector<uint32_t> expand_sequence_set(std::string_view set, size_t limit);

}  // namespace mailsync::imap
