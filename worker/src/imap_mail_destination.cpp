#include "mailsync/sync/imap_mail_destination.hpp"

#include "mailsync/imap/utf7.hpp"
#include "mailsync/util/strings.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "mailsync/mail/rfc822.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/sync/arrival_match.hpp"
#include "mailsync/sync/imap_login.hpp"
#include "mailsync/sync/outcome.hpp"
#include "mailsync/sync/uid_set.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::sync {

namespace {

// Hashes bodies only (reconciliation's check that a found message is the one that was claimed).
class HashSink final : public imap::FetchSink {
 public:
  void body_begin(uint32_t seq, uint64_t) override { partial_[seq] = util::Sha256(); }
  void body_data(uint32_t seq, std::string_view bytes) override { partial_[seq].update(bytes); }
  void fetched(const imap::FetchData& data) override {
    const auto found = partial_.find(data.seq);
    if (data.uid && data.body_section && found != partial_.end()) {
      hashes[*data.uid] = util::to_hex(found->second.finish());
      partial_.erase(found);
    }
  }
  std::map<uint32_t, std::string> hashes;

 private:
  std::map<uint32_t, util::Sha256> partial_;
};

// What arrived since a mark: UID, INTERNALDATE and the Message-ID from the header section.
class ArrivalSink final : public imap::FetchSink {
 public:
  void body_begin(uint32_t seq, uint64_t) override { headers_[seq].clear(); }
  void body_data(uint32_t seq, std::string_view bytes) override {
    std::string& header = headers_[seq];
    if (header.size() + bytes.size() <= kMaxHeader) header.append(bytes);
  }
  void fetched(const imap::FetchData& data) override {
    if (!data.uid) return;
    Arrival arrival;
    arrival.uid = *data.uid;
    if (const auto found = headers_.find(data.seq); found != headers_.end()) {
      arrival.message_id = mail::extract_message_id(found->second);
      headers_.erase(found);
    }
    if (data.internaldate)
      if (const auto parsed = mail::parse_internaldate(*data.internaldate))
        arrival.internaldate = parsed->instant;
    arrivals.push_back(std::move(arrival));
  }
  std::vector<Arrival> arrivals;

 private:
  static constexpr size_t kMaxHeader = 64 << 10;  // one header field; more is not a Message-ID
  std::map<uint32_t, std::string> headers_;
};

// SEARCH HEADER takes printable ASCII only (no CR/LF, no NUL, no 8-bit bytes); a Message-ID with
// others is found by size instead.
bool searchable(const std::string& message_id) {
  return std::all_of(message_id.begin(), message_id.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7E; });
}

}  // namespace

ImapMailDestination::ImapMailDestination(ImapPool& pool, std::string account,
                                         oauth::Credential credential, oauth::TokenProvider& tokens)
    : pool_(pool),
      account_(std::move(account)),
      credential_(std::move(credential)),
      tokens_(tokens) {}

// Outlook.com drops idle connections without a BYE, and may answer the first command after a good
// AUTHENTICATE with "BAD User is authenticated but not connected." and "* BYE Connection closed.
// 14" (the login cannot reach its mailbox: missing rights, the wrong account, or connect churn;
// imapflow probes with NAMESPACE for it). So a pooled connection is checked with NOOP before use,
// a new login is probed with NAMESPACE, and either failing means another connection: stale pooled
// ones are skipped, new logins tried kLoginTries times with a pause between, the last with a fresh
// access token. "Not connected" every time ends the route in auth_required with the likely causes.
imap::Client& ImapMailDestination::client() {
  if (client_) return *client_;
  constexpr int kLoginTries = 3;
  std::string not_connected;
  for (int logins = 0; logins < kLoginTries;) {
    std::unique_ptr<imap::Client> candidate = pool_.acquire(account_);
    const bool pooled = candidate->authenticated();
    try {
      if (pooled) {
        candidate->noop();
      } else {
        ++logins;
        if (logins == kLoginTries && !not_connected.empty())
          tokens_.invalidate(credential_, tokens_.get(credential_).value);
        login_xoauth2(*candidate, account_, credential_, tokens_);
        candidate->probe_namespace();
      }
      client_ = std::move(candidate);
      return *client_;
    } catch (const imap::ImapError& e) {
      if (imap::classify(e).reason == "not_connected") {
        not_connected = util::safe_text(e.what());
        if (logins < kLoginTries) std::this_thread::sleep_for(std::chrono::seconds(logins));
        continue;
      }
      if (!pooled || e.status() != imap::Status::kBye) throw;
    } catch (const net::TransportError&) {
      if (!pooled) throw;  // a pooled one dropped while idle: the next
    }
  }
  tokens_.mark_refused(credential_,
                       "the server accepted the login but refused the mailbox: " + not_connected);
  throw SyncStop(SyncOutcome::kAuthRequired,
                 credential_.label + ": the server accepted the login but refused the mailbox " +
                     std::to_string(kLoginTries) + " times (" + not_connected +
                     "). Likely causes: the account has no IMAP access or the app lacks "
                     "IMAP.AccessAsUser.All, or OUTLOOK_EMAIL is not the account the refresh "
                     "token belongs to.");
}

MailDestination::Folder ImapMailDestination::ensure_folder(const std::string& folder, bool create) {
  if (create) return client().create(folder) ? Folder::kCreated : Folder::kExists;
  // LIST takes a pattern: a folder named with '%' or '*' would match others, so only an answer
  // naming the folder itself counts (case aside: Outlook.com's names are case-insensitive).
  for (const imap::ListData& found : client().list("", folder)) {
    const auto name = imap::decode_mailbox_name(found.name);
    if (name && util::ascii_upper(*name) == util::ascii_upper(folder)) return Folder::kExists;
  }
  return Folder::kMissing;
}

std::vector<imap::AppendOutcome> ImapMailDestination::append(
    const std::string& folder, std::span<const imap::AppendMessage> messages,
    const std::function<bool()>& may_send) {
  if (messages.empty()) return {};
  std::vector<imap::AppendOutcome> outcomes = client().append_many(folder, messages, may_send);
  for (const imap::AppendOutcome& outcome : outcomes) {
    const auto* stored = std::get_if<imap::AppendResult>(&outcome);
    if (stored == nullptr || !stored->uid || !stored->uidvalidity) continue;
    const auto known = next_after_append_.find(folder);
    if (known == next_after_append_.end() || known->second.uidvalidity != *stored->uidvalidity)
      next_after_append_[folder] = Mark{*stored->uidvalidity, *stored->uid + 1};
    else
      known->second.uidnext = std::max(known->second.uidnext, *stored->uid + 1);
  }
  return outcomes;
}

// The mark recorded with a batch's claims must not be above the UID any of its messages gets
// (crash recovery looks at UIDs from the mark on). After this run's first APPENDs, the highest
// UID they got plus one is such a bound, known without a round trip (on a 40 ms path to Outlook
// the EXAMINE was a fifth of a batch's time); a lower mark only makes a recovery look at more.
std::optional<MailDestination::Mark> ImapMailDestination::folder_mark(const std::string& folder) {
  if (const auto known = next_after_append_.find(folder); known != next_after_append_.end())
    return known->second;
  const imap::MailboxInfo info = client().examine(folder);
  if (info.uidvalidity == 0 || info.uidnext == 0) return std::nullopt;
  return Mark{info.uidvalidity, info.uidnext};
}

std::vector<std::optional<uint32_t>> ImapMailDestination::find_arrivals(
    const std::string& folder, const std::vector<PendingClaim>& claims) {
  std::vector<std::optional<uint32_t>> found(claims.size());
  if (claims.empty()) return found;
  imap::Client& dest = client();
  const imap::MailboxInfo info = dest.examine(folder);
  // Claims by the mark recorded before their batch; one FETCH of what arrived since per mark.
  std::map<uint32_t, std::vector<size_t>> by_mark;
  for (size_t i = 0; i < claims.size(); ++i) {
    const PendingClaim& claim = claims[i];
    if (claim.dest_uidnext == 0u) continue;  // its APPEND was never sent (a batch prepared ahead)
    if (claim.dest_uidnext && claim.dest_uidvalidity == info.uidvalidity)
      by_mark[*claim.dest_uidnext].push_back(i);
    else  // from before marks were recorded, or the folder was recreated after its mark was
      found[i] = find_by_bytes(dest, claim);  // taken: the APPEND may have reached the new one
  }
  for (const auto& [uidnext, members] : by_mark) {
    ArrivalSink arrivals;
    if (info.exists > 0)
      dest.uid_fetch(std::to_string(uidnext) + ":*",
                     "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", arrivals);
    std::vector<Arrival> since;
    for (const Arrival& a : arrivals.arrivals)
      if (a.uid >= uidnext) since.push_back(a);  // "n:*" also names the highest UID below n
    std::sort(since.begin(), since.end(),
              [](const Arrival& a, const Arrival& b) { return a.uid < b.uid; });
    std::vector<ExpectedCopy> expected;
    for (const size_t i : members)
      expected.push_back({claims[i].message_id, claims[i].internaldate});
    const std::vector<ArrivalMatch> matches = match_arrivals(expected, since);
    for (size_t k = 0; k < members.size(); ++k) {
      if (matches[k].kind == ArrivalMatch::Kind::kFound) found[members[k]] = matches[k].uid;
      if (matches[k].kind == ArrivalMatch::Kind::kUnsure)
        found[members[k]] = find_by_bytes(dest, claims[members[k]]);
    }
  }
  return found;
}

// Found by Message-ID (else by size), then confirmed by SHA-256: for a server that serves back the
// bytes it was given.
std::optional<uint32_t> ImapMailDestination::find_by_bytes(imap::Client& dest,
                                                           const PendingClaim& claim) {
  std::vector<uint32_t> candidates;
  if (claim.message_id && searchable(*claim.message_id))
    candidates = dest.uid_search(imap::SearchCriteria::header("Message-ID", *claim.message_id));
  else if (claim.size)
    candidates = dest.uid_search(imap::SearchCriteria::size_between(*claim.size, *claim.size));
  if (candidates.empty() || claim.sha256_hex.empty()) return std::nullopt;
  HashSink hashes;
  dest.uid_fetch(uid_set(candidates), "(UID BODY.PEEK[])", hashes);
  for (const auto& [uid, sha] : hashes.hashes)
    if (sha == claim.sha256_hex) return uid;
  return std::nullopt;
}

void ImapMailDestination::close(bool reusable) {
  if (client_ && reusable) pool_.release(account_, std::move(client_));
  client_.reset();
}

}  // namespace mailsync::sync
