// The IMAP response parser, table-driven: every response is parsed whole (parse_response) and fed
// byte by byte (ResponseParser), and both must give the expected description.

#include <gtest/gtest.h>

#include <sstream>

#include "mailsync/imap/parser.hpp"

namespace {

using namespace mailsync::imap;

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string describe_code(const std::optional<ResponseCode>& code) {
  if (!code) return "";
  std::string out = " [" + code->name;
  if (code->number) out += " n=" + std::to_string(*code->number);
  if (code->append_uidvalidity)
    out += " v=" + std::to_string(*code->append_uidvalidity) + " uids=" + *code->append_uids;
  if (code->copy_uidvalidity)
    out += " v=" + std::to_string(*code->copy_uidvalidity) + " " + *code->copy_source_uids + "->" +
           *code->copy_dest_uids;
  if (!code->capabilities.empty()) out += " caps=" + join(code->capabilities);
  if (!code->flags.empty()) out += " flags=" + join(code->flags);
  return out + "]";
}

std::string describe(const Response& response) {
  std::ostringstream out;
  if (const auto* status = std::get_if<StatusResponse>(&response)) {
    out << "status " << status->tag << " " << to_string(status->status)
        << describe_code(status->code) << " text=" << status->text;
  } else if (const auto* cont = std::get_if<Continuation>(&response)) {
    out << "continuation " << cont->text;
  } else if (const auto* cap = std::get_if<CapabilityData>(&response)) {
    out << "capability " << join(cap->capabilities);
  } else if (const auto* list = std::get_if<ListData>(&response)) {
    out << "list (" << join(list->attributes) << ") "
        << (list->delimiter ? std::string(1, *list->delimiter) : "NIL") << " " << list->name;
  } else if (const auto* search = std::get_if<SearchData>(&response)) {
    out << "search";
    for (const auto n : search->numbers) out << " " << n;
  } else if (const auto* es = std::get_if<ESearchData>(&response)) {
    out << "esearch tag=" << es->tag.value_or("-") << (es->uid ? " uid" : "");
    if (es->min) out << " min=" << *es->min;
    if (es->max) out << " max=" << *es->max;
    if (es->count) out << " count=" << *es->count;
    if (es->all) out << " all=" << *es->all;
  } else if (const auto* fetch = std::get_if<FetchData>(&response)) {
    out << "fetch " << fetch->seq;
    if (fetch->uid) out << " uid=" << *fetch->uid;
    if (fetch->flags) out << " flags=(" << join(*fetch->flags) << ")";
    if (fetch->rfc822_size) out << " size=" << *fetch->rfc822_size;
    if (fetch->internaldate) out << " date=" << *fetch->internaldate;
    if (fetch->gm_msgid) out << " gm=" << *fetch->gm_msgid;
    if (fetch->modseq) out << " modseq=" << *fetch->modseq;
    if (fetch->body_section)
      out << " body[" << *fetch->body_section << "]="
          << (fetch->body_nil        ? std::string("NIL")
              : fetch->body_streamed ? std::string("streamed")
                                     : "'" + *fetch->body + "'")
          << "/" << fetch->body_size;
  } else if (const auto* count = std::get_if<CountData>(&response)) {
    out << (count->kind == CountData::Kind::kExists   ? "exists "
            : count->kind == CountData::Kind::kRecent ? "recent "
                                                      : "expunge ")
        << count->number;
  } else if (const auto* flags = std::get_if<FlagsData>(&response)) {
    out << "flags " << join(flags->flags);
  } else if (const auto* other = std::get_if<OtherData>(&response)) {
    out << "other " << other->keyword;
  }
  return out.str();
}

struct Case {
  const char* name;
  std::string input;
  std::string expected;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {"greeting with capabilities",
       "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Dovecot ready.\r\n",
       "status * OK [CAPABILITY caps=IMAP4REV1 SASL-IR AUTH=XOAUTH2] text=Dovecot ready."},
      {"uidvalidity", "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
       "status * OK [UIDVALIDITY n=3857529045] text=UIDs valid"},
      {"uidnext", "* OK [UIDNEXT 4392] Predicted next UID\r\n",
       "status * OK [UIDNEXT n=4392] text=Predicted next UID"},
      {"appenduid", "a1 OK [APPENDUID 38505 3955] APPEND completed\r\n",
       "status a1 OK [APPENDUID v=38505 uids=3955] text=APPEND completed"},
      {"copyuid", "a2 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
       "status a2 OK [COPYUID v=38505 304,319:320->3956:3958] text=Done"},
      {"trycreate", "a3 NO [TRYCREATE] Mailbox doesn't exist: Gmail/alice\r\n",
       "status a3 NO [TRYCREATE] text=Mailbox doesn't exist: Gmail/alice"},
      {"alreadyexists", "a4 NO [ALREADYEXISTS] Mailbox already exists\r\n",
       "status a4 NO [ALREADYEXISTS] text=Mailbox already exists"},
      {"limit", "a5 NO [LIMIT] Message too large\r\n",
       "status a5 NO [LIMIT] text=Message too large"},
      {"overquota", "a6 NO [OVERQUOTA] Quota exceeded\r\n",
       "status a6 NO [OVERQUOTA] text=Quota exceeded"},
      {"unavailable", "a7 NO [UNAVAILABLE] Temporary authentication failure.\r\n",
       "status a7 NO [UNAVAILABLE] text=Temporary authentication failure."},
      {"authenticationfailed", "a8 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n",
       "status a8 NO [AUTHENTICATIONFAILED] text=Invalid credentials (Failure)"},
      {"throttled", "a9 NO [THROTTLED] Account exceeded command or bandwidth limits.\r\n",
       "status a9 NO [THROTTLED] text=Account exceeded command or bandwidth limits."},
      {"outlook throttled with BAD",
       "a10 BAD Request is throttled. Suggested Backoff Time: 36445 milliseconds\r\n",
       "status a10 BAD text=Request is throttled. Suggested Backoff Time: 36445 milliseconds"},
      {"permanentflags", "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
       "status * OK [PERMANENTFLAGS flags=\\Deleted \\Seen \\*] text=Limited"},
      {"read-only", "m3 OK [READ-ONLY] Examine completed\r\n",
       "status m3 OK [READ-ONLY] text=Examine completed"},
      {"gmail session expired", "* BYE Session expired, please login again.\r\n",
       "status * BYE text=Session expired, please login again."},
      {"preauth", "* PREAUTH IMAP4rev1 server logged in as Smith\r\n",
       "status * PREAUTH text=IMAP4rev1 server logged in as Smith"},
      {"tagged OK without text", "a1 OK\r\n", "status a1 OK text="},
      {"lower-case keywords", "* ok [uidvalidity 5] x\r\n", "status * OK [UIDVALIDITY n=5] text=x"},
      {"xoauth2 error challenge",
       "+ "
       "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8"
       "ifQ==\r\n",
       "continuation "
       "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8"
       "ifQ=="},
      {"idling", "+ idling\r\n", "continuation idling"},
      {"bare continuation", "+\r\n", "continuation "},
      {"capability",
       "* CAPABILITY IMAP4rev1 UIDPLUS IDLE LITERAL+ X-GM-EXT-1 APPENDLIMIT=35882577\r\n",
       "capability IMAP4REV1 UIDPLUS IDLE LITERAL+ X-GM-EXT-1 APPENDLIMIT=35882577"},
      {"list inbox", "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n",
       "list (\\HasNoChildren) / INBOX"},
      {"list gmail folder", "* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"\r\n",
       "list (\\Noselect \\HasChildren) / [Gmail]"},
      {"list atom with brackets", "* LIST () \"/\" [Gmail]/Sent\r\n", "list () / [Gmail]/Sent"},
      {"list utf7 name", "* LIST (\\HasNoChildren \\Drafts) \".\" \"Entw&APw-rfe\"\r\n",
       "list (\\HasNoChildren \\Drafts) . Entw&APw-rfe"},
      {"list nil delimiter", "* LIST () NIL inbox\r\n", "list () NIL inbox"},
      {"list literal name", "* LIST (\\HasNoChildren) \"/\" {9}\r\nfoo \"bar\"\r\n",
       "list (\\HasNoChildren) / foo \"bar\""},
      {"list utf8 name",
       "* LIST () \"/\" \"Entw\xc3\xbc"
       "rfe\"\r\n",
       "list () / Entw\xc3\xbcrfe"},
      {"search", "* SEARCH 2 84 882\r\n", "search 2 84 882"},
      {"search empty", "* SEARCH\r\n", "search"},
      {"search with modseq", "* SEARCH 1 2 (MODSEQ 917162500)\r\n", "search 1 2"},
      {"esearch", "* ESEARCH (TAG \"A282\") UID MIN 2 MAX 11 COUNT 3 ALL 2,10:11\r\n",
       "esearch tag=A282 uid min=2 max=11 count=3 all=2,10:11"},
      {"esearch without results", "* ESEARCH (TAG \"m5\") UID\r\n", "esearch tag=m5 uid"},
      {"fetch everything",
       "* 12 FETCH (UID 4827313 FLAGS (\\Seen $Important) RFC822.SIZE 11 INTERNALDATE "
       "\"17-Jul-1996 02:44:25 -0700\" "
       "X-GM-MSGID 1278455344230334865 BODY[] {11}\r\nHi\r\n\r\nthere)\r\n",
       "fetch 12 uid=4827313 flags=(\\Seen $Important) size=11 date=17-Jul-1996 02:44:25 -0700 "
       "gm=1278455344230334865 body[]='Hi\r\n\r\nthere'/11"},
      {"fetch body before uid", "* 3 FETCH (BODY[] {5}\r\nhello UID 9)\r\n",
       "fetch 3 uid=9 body[]='hello'/5"},
      {"fetch nil body", "* 4 FETCH (UID 10 BODY[] NIL)\r\n", "fetch 4 uid=10 body[]=NIL/0"},
      {"fetch quoted body", "* 5 FETCH (UID 11 BODY[] \"hi\")\r\n", "fetch 5 uid=11 body[]='hi'/2"},
      {"fetch binary literal8",
       std::string("* 6 FETCH (UID 12 BINARY[] ~{3}\r\na") + '\0' + "b)\r\n",
       std::string("fetch 6 uid=12 body[]='a") + '\0' + "b'/3"},
      {"fetch flags only", "* 7 FETCH (FLAGS (\\Seen \\Recent))\r\n",
       "fetch 7 flags=(\\Seen \\Recent)"},
      {"fetch skips what it does not read",
       "* 8 FETCH (X-GM-LABELS (\"\\\\Inbox\" foo) UID 13 MODSEQ (12345) X-GM-THRID "
       "1278455344230334865 "
       "ENVELOPE (\"date\" \"subj\" ((NIL NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL NIL "
       "\"<id@x>\"))\r\n",
       "fetch 8 uid=13 modseq=12345"},
      {"fetch header fields section",
       "* 9 FETCH (UID 14 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMessage-ID: <a@b>\r\n\r\n)\r\n",
       "fetch 9 uid=14 body[HEADER.FIELDS (MESSAGE-ID)]='Message-ID: <a@b>\r\n\r\n'/21"},
      {"fetch partial origin", "* 10 FETCH (UID 15 BODY[]<0> {2}\r\nab)\r\n",
       "fetch 10 uid=15 body[]='ab'/2"},
      {"fetch rfc822", "* 11 FETCH (RFC822 {2}\r\nab UID 16)\r\n",
       "fetch 11 uid=16 body[RFC822]='ab'/2"},
      {"exists", "* 23 EXISTS\r\n", "exists 23"},
      {"recent", "* 0 RECENT\r\n", "recent 0"},
      {"expunge", "* 44 EXPUNGE\r\n", "expunge 44"},
      {"flags", "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
       "flags \\Answered \\Flagged \\Deleted \\Seen \\Draft"},
      {"enabled", "* ENABLED CONDSTORE\r\n", "other ENABLED"},
      {"id with list", "* ID (\"name\" \"Dovecot\" \"version\" {3}\r\n2.3)\r\n", "other ID"},
  };
  return kCases;
}

ParserLimits small_limits() {
  return ParserLimits{};
}

TEST(ImapParser, ParsesEveryResponseWhole) {
  for (const Case& c : cases()) {
    const ParseOutcome outcome = parse_response(c.input, small_limits());
    ASSERT_EQ(outcome.kind, ParseOutcome::Kind::kDone) << c.name;
    EXPECT_EQ(outcome.consumed, c.input.size()) << c.name;
    EXPECT_EQ(describe(*outcome.response), c.expected) << c.name;
  }
}

TEST(ImapParser, ParsesEveryResponseFedByteByByte) {
  for (const Case& c : cases()) {
    ResponseParser parser;
    for (size_t i = 0; i < c.input.size(); ++i) {
      EXPECT_FALSE(parser.next().has_value()) << c.name << ": response before its last byte";
      parser.feed(c.input.substr(i, 1));
    }
    const auto response = parser.next();
    ASSERT_TRUE(response.has_value()) << c.name;
    EXPECT_EQ(describe(*response), c.expected) << c.name;
    EXPECT_EQ(parser.pending_bytes(), 0u) << c.name;
  }
}

TEST(ImapParser, ParsesAllResponsesFedAtOnce) {
  std::string all;
  for (const Case& c : cases()) all += c.input;
  ResponseParser parser;
  parser.feed(all);
  for (const Case& c : cases()) {
    const auto response = parser.next();
    ASSERT_TRUE(response.has_value()) << c.name;
    EXPECT_EQ(describe(*response), c.expected) << c.name;
  }
  EXPECT_FALSE(parser.next().has_value());
}

TEST(ImapParser, SaysNeedMoreOnPartialInput) {
  for (const char* partial :
       {"* OK partial", "* 1 FETCH (BODY[] {10}\r\nabc", "a1 OK\r", "* 1 FETCH (BODY[] {10}"}) {
    EXPECT_EQ(parse_response(partial).kind, ParseOutcome::Kind::kNeedMore) << partial;
  }
}

TEST(ImapParser, RejectsMalformedResponses) {
  const char* bad[] = {
      "* 12 FETCH (UID abc)\r\n",
      "* 99999999999 EXISTS\r\n",
      "a1 MAYBE x\r\n",
      "* OK [UIDVALIDITY] x\r\n",
      "* OK [UIDVALIDITY x] y\r\n",
      "* LIST (\\Noselect) \"//\" foo\r\n",
      "* SEARCH 1 2 x\r\n",
      "* LIST () \"/\" \"INBOX\r\n",
      "a1 OK [ALERT x\r\n",
      "* 1 FETCH (UID 1\r\n",
      "* 1 FETCH UID 1)\r\n",
      "* 1 WHATEVER\r\n",
      "\r\n",
      "a1\r\n",
      "* 1 FETCH (UID 1) trailing\r\n",
      "* OK [APPENDUID 1] x\r\n",
      "* 1 FETCH (BODY[ {1}\r\nx)\r\n",
      "* 1 FETCH (UID 4294967296)\r\n",
      "* OK [UIDNEXT 4294967296] x\r\n",
      "* 1 FETCH (FLAGS (\\Seen\r\n",
      "* SEARCH 1  2\r\n",
  };
  for (const char* input : bad) {
    EXPECT_THROW(parse_response(input), ParseError) << input;
    ResponseParser parser;
    EXPECT_THROW(parser.feed(input), ParseError) << input;
    EXPECT_THROW(parser.feed("* OK\r\n"), ParseError) << "a failed parser must stay failed";
  }
}

TEST(ImapParser, BoundsLineLength) {
  ParserLimits limits;
  limits.max_line = 100;
  const std::string long_line = "* SEARCH" + std::string(200, ' ') + "\r\n";
  EXPECT_THROW(parse_response(long_line, limits), ParseError);
  ResponseParser parser(limits);
  // Without any CRLF: refused as soon as the limit is passed, not when memory runs out.
  EXPECT_THROW(parser.feed(std::string(101, 'x')), ParseError);
}

TEST(ImapParser, BoundsLiteralSizeBeforeReadingIt) {
  ParserLimits limits;
  limits.max_literal = 1000;
  EXPECT_THROW(parse_response("* 1 FETCH (BODY[] {1001}\r\n", limits), ParseError);
  ResponseParser parser(limits);
  try {
    parser.feed("* 1 FETCH (BODY[] {99999999999}\r\n");
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the limit of 1000"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_response("* 1 FETCH (BODY[] {123456789012345678901}\r\n"), ParseError);
}

TEST(ImapParser, BoundsNesting) {
  ParserLimits limits;
  limits.max_depth = 10;
  const std::string deep =
      "* 1 FETCH (ENVELOPE " + std::string(50, '(') + std::string(50, ')') + ")\r\n";
  try {
    parse_response(deep, limits);
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than 10"), std::string::npos) << e.what();
  }
}

TEST(ImapParser, BoundsTheWholeBufferedResponse) {
  ParserLimits limits;
  limits.max_literal = 100;
  limits.max_buffered = 250;
  std::string many = "* ID (";
  for (int i = 0; i < 5; ++i) many += "{100}\r\n" + std::string(100, 'x') + " ";
  EXPECT_THROW(parse_response(many + ")\r\n", limits), ParseError);
}

class RecordingSink : public BodySink {
 public:
  void begin(uint32_t seq, uint64_t size) override {
    events += "begin " + std::to_string(seq) + " " + std::to_string(size) + ";";
  }
  void data(uint32_t, std::string_view bytes) override {
    body.append(bytes);
    ++chunks;
  }
  void end() override { events += "end;"; }
  std::string events, body;
  int chunks = 0;
};

TEST(ImapParser, StreamsLargeBodiesToTheSinkWithoutBufferingThem) {
  ParserLimits limits;
  limits.stream_threshold = 1000;
  limits.max_literal = 2000;  // the body is far larger than anything the parser may buffer
  ResponseParser parser(limits);
  RecordingSink sink;
  parser.set_body_sink(&sink);
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + 3);
  const std::string input = "* 42 FETCH (UID 7 RFC822.SIZE " + std::to_string(body.size()) +
                            " BODY[] {" + std::to_string(body.size()) + "}\r\n" + body +
                            " INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")\r\n";
  size_t max_pending = 0;
  for (size_t i = 0; i < input.size(); i += 4096) {
    parser.feed(std::string_view(input).substr(i, 4096));
    max_pending = std::max(max_pending, parser.pending_bytes());
  }
  EXPECT_EQ(sink.events, "begin 42 1048576;end;");
  EXPECT_EQ(sink.body, body);
  EXPECT_GT(sink.chunks, 100);
  EXPECT_LT(max_pending, 10000u) << "the body was buffered";
  const auto response = parser.next();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(describe(*response),
            "fetch 42 uid=7 size=1048576 date=01-Jan-2020 00:00:00 +0000 body[]=streamed/1048576");
}

TEST(ImapParser, KeepsSmallBodiesAndHeaderSectionsInTheResponse) {
  ParserLimits limits;
  limits.stream_threshold = 10;
  ResponseParser parser(limits);
  RecordingSink sink;
  parser.set_body_sink(&sink);
  parser.feed(
      "* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n* 2 FETCH (UID 2 BODY[HEADER.FIELDS (MESSAGE-ID)] "
      "{21}\r\n"
      "Message-ID: <x@y>\r\n\r\n)\r\n* ID (\"k\" {12}\r\n123456789012)\r\n");
  EXPECT_EQ(describe(*parser.next()), "fetch 1 uid=1 body[]='abc'/3");
  EXPECT_EQ(describe(*parser.next()),
            "fetch 2 uid=2 body[HEADER.FIELDS (MESSAGE-ID)]='Message-ID: <x@y>\r\n\r\n'/21");
  EXPECT_EQ(describe(*parser.next()), "other ID");
  EXPECT_EQ(sink.events, "");
}

TEST(SequenceSet, ExpandsRangesAndRefusesHostileSizes) {
  EXPECT_EQ(expand_sequence_set("1:3,7,12:10", 100),
            (std::vector<uint32_t>{1, 2, 3, 7, 10, 11, 12}));
  EXPECT_THROW(expand_sequence_set("1:4294967295", 1000), std::length_error);
  EXPECT_THROW(expand_sequence_set("1,", 10), std::invalid_argument);
  EXPECT_THROW(expand_sequence_set("0:3", 10), std::invalid_argument);
  EXPECT_THROW(expand_sequence_set("*", 10), std::invalid_argument);
}

}  // namespace

TEST(ImapParser, ATrickledLongLineIsSearchedOnceNotFromItsStartOnEveryByte) {
  // A server sending a 200,000-byte SEARCH answer one byte per read. Before, every feed searched
  // the unterminated line from its start again: ~2e10 bytes here, and quadratic in the line.
  ResponseParser parser;
  std::string line = "* SEARCH";
  while (line.size() < 200'000) line += " 1234567";
  line += "\r\n";
  for (const char c : line) parser.feed(std::string_view(&c, 1));
  const auto response = parser.next();
  ASSERT_TRUE(response.has_value());
  EXPECT_LE(parser.bytes_searched(), 2 * line.size()) << "searched " << parser.bytes_searched();
  // A CRLF split across two reads is still found.
  parser.feed("* OK a\r");
  EXPECT_FALSE(parser.next().has_value());
  parser.feed("\n");
  EXPECT_TRUE(parser.next().has_value());
}
