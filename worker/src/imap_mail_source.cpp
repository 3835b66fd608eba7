#include "mailsync/sync/imap_mail_source.hpp"

#include <algorithm>

#include "mailsync/mail/rfc822.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/sync/imap_login.hpp"
#include "mailsync/sync/uid_set.hpp"
#include "mailsync/util/sha256.hpp"
#include "mailsync/util/strings.hpp"

namespace mailsync::sync {

// Bodies are kept per FETCH sequence number: the next body may start streaming before the
// previous message's fetched() (see imap::FetchSink). Each UID once: a server that returns one
// twice has it copied once.
class ImapMailSource::BatchSink final : public imap::FetchSink {
 public:
  void body_begin(uint32_t seq, uint64_t size) override {
    Partial& partial = partial_[seq];
    partial.bytes.clear();
    partial.bytes.reserve(static_cast<size_t>(size));
    partial.hash = util::Sha256();
  }
  void body_data(uint32_t seq, std::string_view bytes) override {
    Partial& partial = partial_[seq];
    partial.bytes.append(bytes);
    partial.hash.update(bytes);
  }
  void fetched(const imap::FetchData& data) override {
    const auto found = partial_.find(data.seq);
    if (!data.uid || !data.body_section || served_.contains(*data.uid)) {
      if (found != partial_.end()) partial_.erase(found);
      return;
    }
    served_.insert(*data.uid);
    if (data.body_nil || found == partial_.end()) {  // BODY[] NIL: never a 0-byte message
      not_served(*data.uid, "the source served BODY[] as NIL");
      return;
    }
    FetchedMessage message;
    message.uid = *data.uid;
    message.sha256_hex = util::to_hex(found->second.hash.finish());
    message.message_id = mail::extract_message_id(found->second.bytes);
    message.internaldate = data.internaldate;
    message.gm_msgid = data.gm_msgid;
    message.bytes = std::move(found->second.bytes);
    partial_.erase(found);
    messages.push_back(std::move(message));
  }
  void not_served(uint32_t uid, std::string why) {
    served_.insert(uid);
    FetchedMessage message;
    message.uid = uid;
    message.unserved = std::move(why);
    messages.push_back(std::move(message));
  }
  bool served(uint32_t uid) const { return served_.contains(uid); }
  std::vector<FetchedMessage> messages;

 private:
  struct Partial {
    std::string bytes;
    util::Sha256 hash;
  };
  std::map<uint32_t, Partial> partial_;
  std::set<uint32_t> served_;
};

namespace {

// Metadata of the candidates, before any body is fetched: sizes plan the batches.
class SizeSink final : public imap::FetchSink {
 public:
  void body_begin(uint32_t, uint64_t) override {}
  void body_data(uint32_t, std::string_view) override {}
  void fetched(const imap::FetchData& data) override {
    if (data.uid) sizes[*data.uid] = data.rfc822_size.value_or(0);
  }
  std::map<uint32_t, uint64_t> sizes;
};

constexpr size_t kSizesPerFetch = 2000;  // UIDs per UID FETCH (RFC822.SIZE): bounded command lines

}  // namespace

ImapMailSource::ImapMailSource(ImapPool& pool, std::string account, oauth::Credential credential,
                               oauth::TokenProvider& tokens)
    : pool_(pool),
      account_(std::move(account)),
      credential_(std::move(credential)),
      tokens_(tokens) {}

ImapMailSource::~ImapMailSource() = default;

imap::MailboxInfo ImapMailSource::open_inbox() {
  for (int tries = 0;; ++tries) {
    client_ = pool_.acquire(account_);
    const bool reused = client_->authenticated();
    try {
      if (!reused) login_xoauth2(*client_, account_, credential_, tokens_);
      return client_->examine("INBOX");
    } catch (const std::exception& e) {
      // A pooled connection the server closed meanwhile (idle timeout, "Session expired"): once
      // more on a new one.
      const bool connection_problem = dynamic_cast<const imap::ImapError*>(&e) != nullptr ||
                                      dynamic_cast<const net::TransportError*>(&e) != nullptr;
      if (!reused || tries > 0 || !connection_problem) throw;
      client_.reset();
    }
  }
}

bool ImapMailSource::has_gmail_extensions() const {
  return client_ && client_->has("X-GM-EXT-1");
}

std::vector<uint32_t> ImapMailSource::uids_above(uint32_t uid) {
  // "UID n:*" always matches the highest UID, even below n (RFC 3501 6.4.8): filter.
  std::vector<uint32_t> above;
  for (const uint32_t found : client_->uid_search(imap::SearchCriteria::uid_range(uid + 1)))
    if (found > uid) above.push_back(found);
  return above;
}

std::vector<uint32_t> ImapMailSource::uids_since(TimePoint day) {
  return client_->uid_search(imap::SearchCriteria::since(day));
}

std::vector<uint32_t> ImapMailSource::all_uids() {
  return client_->uid_search(imap::SearchCriteria::all());
}

std::map<uint32_t, uint64_t> ImapMailSource::sizes(const std::vector<uint32_t>& uids) {
  SizeSink sink;
  for (size_t i = 0; i < uids.size(); i += kSizesPerFetch) {
    const std::vector<uint32_t> chunk(
        uids.begin() + static_cast<long>(i),
        uids.begin() + static_cast<long>(std::min(uids.size(), i + kSizesPerFetch)));
    client_->uid_fetch(uid_set(chunk), "(UID RFC822.SIZE)", sink);
  }
  return std::move(sink.sizes);
}

std::vector<FetchedMessage> ImapMailSource::fetch(const std::vector<uint32_t>& uids) {
  BatchSink sink;
  fetch_into(uids, sink);
  std::sort(sink.messages.begin(), sink.messages.end(),
            [](const FetchedMessage& a, const FetchedMessage& b) { return a.uid < b.uid; });
  return std::move(sink.messages);
}

// Gmail answers a FETCH whose UID set holds a message it cannot serve with "NO Some messages could
// not be FETCHed (Failure)", every time, after serving the others. Those are kept; the UIDs not
// served are asked for again in halves until each one that still fails is alone, and that one is
// `unserved` with the server's words: a route never stalls on one message (about 2k log2(n)
// commands for k such messages in a batch of n). A NO that speaks for the server, not a message
// (System Error, [UNAVAILABLE], throttling), ends the run as before, to be retried.
void ImapMailSource::fetch_into(const std::vector<uint32_t>& uids, BatchSink& sink) {
  if (uids.empty()) return;
  const std::string items = std::string("(UID RFC822.SIZE INTERNALDATE BODY.PEEK[]") +
                            (has_gmail_extensions() ? " X-GM-MSGID)" : ")");
  try {
    client_->uid_fetch(uid_set(uids), items, sink);
  } catch (const imap::ImapError& e) {
    const imap::ErrorClass judged = imap::classify(e);
    if (e.status() != imap::Status::kNo || judged.kind == imap::ErrorClass::Kind::kThrottled ||
        judged.reason == "server_unavailable")
      throw;
    std::vector<uint32_t> missing;
    for (const uint32_t uid : uids)
      if (!sink.served(uid)) missing.push_back(uid);
    if (uids.size() == 1) {
      if (!missing.empty()) sink.not_served(uids[0], util::safe_text(e.what()));
      return;
    }
    // One left alone is asked for by itself (the first half is then empty).
    const auto half = missing.begin() + static_cast<long>(missing.size() / 2);
    fetch_into({missing.begin(), half}, sink);
    fetch_into({half, missing.end()}, sink);
  }
}

void ImapMailSource::close(bool reusable) {
  if (!client_) return;
  if (reusable)
    pool_.release(account_, std::move(client_));
  else
    client_->logout();
  client_.reset();
}

}  // namespace mailsync::sync
