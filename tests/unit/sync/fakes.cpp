#include "fakes.hpp"

#include <algorithm>

#include "mailsync/mail/rfc822.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::sync::fakes {

namespace {

std::string sha256_hex(std::string_view bytes) {
  util::Sha256 hash;
  hash.update(bytes);
  return util::to_hex(hash.finish());
}

}  // namespace

// ---- FakeSource ----------------------------------------------------------------------------

uint32_t FakeSource::add(std::string bytes, TimePoint date, std::optional<uint64_t> gm_msgid) {
  const uint32_t uid = uidnext++;
  inbox[uid] = {std::move(bytes), date, gm_msgid};
  return uid;
}

imap::MailboxInfo FakeSource::open_inbox() {
  ++opens;
  if (on_open) on_open();
  return {uidvalidity, uidnext, static_cast<uint32_t>(inbox.size()), true, {}};
}

std::vector<uint32_t> FakeSource::uids_above(uint32_t uid) {
  std::vector<uint32_t> out;
  for (const auto& [found, message] : inbox)
    if (found > uid) out.push_back(found);
  return out;
}

std::vector<uint32_t> FakeSource::uids_since(TimePoint day) {
  std::vector<uint32_t> out;
  for (const auto& [uid, message] : inbox)
    if (message.internaldate >= day) out.push_back(uid);
  return out;
}

std::vector<uint32_t> FakeSource::all_uids() {
  return uids_above(0);
}

std::map<uint32_t, uint64_t> FakeSource::sizes(const std::vector<uint32_t>& uids) {
  for (const uint32_t uid : expunged_after_search) inbox.erase(uid);
  std::map<uint32_t, uint64_t> out;
  for (const uint32_t uid : uids)
    if (const auto found = inbox.find(uid); found != inbox.end())
      out[uid] = found->second.bytes.size();
  return out;
}

std::vector<FetchedMessage> FakeSource::fetch(const std::vector<uint32_t>& uids) {
  std::lock_guard lock(mutex_);
  fetches.push_back(uids);
  std::vector<FetchedMessage> out;
  for (const uint32_t uid : uids) {
    const auto found = inbox.find(uid);
    if (found == inbox.end()) continue;
    if (const auto refused = unservable.find(uid); refused != unservable.end()) {
      FetchedMessage message;
      message.uid = uid;
      message.unserved = refused->second;
      out.push_back(message);
      continue;
    }
    const SourceMessage& m = found->second;
    out.push_back({uid, m.bytes, sha256_hex(m.bytes), mail::extract_message_id(m.bytes),
                   "01-Jan-2026 10:00:00 +0000", m.gm_msgid});
  }
  return out;
}

// ---- FakeDestination -----------------------------------------------------------------------

size_t FakeDestination::count(const std::string& name, std::string_view bytes) {
  const auto& stored = folders[name];
  return static_cast<size_t>(std::count_if(stored.begin(), stored.end(),
                                           [&](const Stored& s) { return s.bytes == bytes; }));
}

MailDestination::Folder FakeDestination::ensure_folder(const std::string& folder, bool create) {
  ++ensure_calls;
  if (folders.contains(folder)) return Folder::kExists;
  if (!create) return Folder::kMissing;
  folders[folder];
  return Folder::kCreated;
}

std::vector<imap::AppendOutcome> FakeDestination::append(
    const std::string& folder, std::span<const imap::AppendMessage> messages,
    const std::function<bool()>& may_send) {
  ++append_calls;
  std::vector<imap::AppendOutcome> out;
  for (const auto& message : messages) {
    if (may_send && !may_send()) break;  // nothing more goes out
    if (drop_after && (*drop_after)-- <= 0) {
      drop_after.reset();  // once: the next connection works
      throw net::TransportError(net::TransportErrorKind::kClosed, "connection closed by peer");
    }
    if (refuse)
      if (auto refusal = refuse(message.bytes)) {
        out.emplace_back(std::move(*refusal));
        continue;
      }
    const uint32_t uid = next_uid++;
    folders[folder].push_back(
        {uid, std::string(message.bytes), message.flags, message.internaldate});
    if (lose_tagged_ok_after && (*lose_tagged_ok_after)-- <= 0) {
      lose_tagged_ok_after.reset();
      throw net::TransportError(net::TransportErrorKind::kClosed, "connection closed by peer");
    }
    out.emplace_back(imap::AppendResult{uidvalidity, uid});
  }
  return out;
}

std::vector<std::optional<uint32_t>> FakeDestination::find_arrivals(
    const std::string& folder, const std::vector<PendingClaim>& claims) {
  ++find_calls;
  std::vector<std::optional<uint32_t>> out(claims.size());
  for (size_t i = 0; i < claims.size(); ++i)
    for (const auto& stored : folders[folder])
      if (sha256_hex(stored.bytes) == claims[i].sha256_hex) out[i] = stored.uid;
  return out;
}

// ---- FakeSyncStore -------------------------------------------------------------------------

std::vector<uint32_t> FakeSyncStore::uids_in(const std::string& route, const std::string& state) {
  std::vector<uint32_t> out;
  for (const auto& [key, claim] : claims)
    if (std::get<0>(key) == route && claim.state == state) out.push_back(std::get<2>(key));
  return out;
}

void FakeSyncStore::ensure_route(const config::Route& route) {
  hook("ensure_route");
  routes.insert(route.key());
}

std::optional<Watermark> FakeSyncStore::watermark(const std::string& route) {
  hook("watermark");
  const auto found = watermarks.find(route);
  if (found == watermarks.end()) return std::nullopt;
  return found->second;
}

void FakeSyncStore::fence_check(const Fence& fence) {
  if (!lease_live(fence))
    throw LeaseLost("job " + std::to_string(fence.job_id) + " no longer holds its lease");
}

void FakeSyncStore::expect_own(const Fence& fence, const Claim* claim) {
  if (claim == nullptr || claim->state != "PENDING" || claim->job_id != fence.job_id ||
      claim->attempt != fence.attempt)
    throw LeaseLost("a claim is not the fence's own PENDING claim");
}

void FakeSyncStore::set_watermark(const Fence& fence, const std::string& route,
                                  const Watermark& w) {
  hook("set_watermark");
  fence_check(fence);
  auto found = watermarks.find(route);
  if (found != watermarks.end() && found->second.uidvalidity == w.uidvalidity)
    found->second.last_uid = std::max(found->second.last_uid, w.last_uid);  // never backwards
  else
    watermarks[route] = w;
}

std::map<uint32_t, ClaimState> FakeSyncStore::claim(const std::string& route, uint32_t uidvalidity,
                                                    const std::vector<ClaimRequest>& requests,
                                                    const Fence& fence) {
  hook("claim");
  fence_check(fence);
  std::map<uint32_t, ClaimState> out;
  for (const auto& r : requests) {
    const Key key{route, uidvalidity, r.uid};
    const auto found = claims.find(key);
    if (found == claims.end()) {
      claims[key] = {"PENDING", fence.job_id, fence.attempt, r.message_id, r.sha256_hex,
                     r.size,    {},           r.gm_msgid};
      claims[key].internaldate = r.internaldate;
      claims[key].dest_uidnext = 0;  // as PostgreSQL: not sent yet
      out[r.uid] = {ClaimState::Kind::kClaimed};
    } else {
      out[r.uid] = {
          found->second.state == "DONE" ? ClaimState::Kind::kDone : ClaimState::Kind::kPending,
          found->second.dest_uid, found->second.message_id, found->second.size};
    }
  }
  return out;
}

void FakeSyncStore::finalize(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                             const std::vector<Copied>& copied) {
  hook("finalize");
  fence_check(fence);
  for (const auto& c : copied) {  // all or nothing, as the statement
    const auto found = claims.find({route, uidvalidity, c.uid});
    expect_own(fence, found == claims.end() ? nullptr : &found->second);
  }
  for (const auto& c : copied) {
    const Key key{route, uidvalidity, c.uid};
    auto found = claims.find(key);
    found->second.state = "DONE";
    found->second.dest_uid = c.dest_uid;
    found->second.message_id = c.message_id;
    found->second.sha256_hex = c.sha256_hex;
    found->second.size = c.size;
    if (c.gm_msgid) found->second.gm_msgid = c.gm_msgid;  // as coalesce() in sync_finalize
    failures.erase(key);
  }
}

void FakeSyncStore::record_destination_mark(const Fence& fence, const std::string& route,
                                            uint32_t uidvalidity, const std::vector<uint32_t>& uids,
                                            std::optional<uint32_t> dest_uidvalidity,
                                            std::optional<uint32_t> dest_uidnext) {
  hook("record_destination_mark");
  fence_check(fence);
  for (const uint32_t uid : uids) {
    const auto found = claims.find({route, uidvalidity, uid});
    expect_own(fence, found == claims.end() ? nullptr : &found->second);
  }
  for (const uint32_t uid : uids) {
    Claim& claim = claims.at({route, uidvalidity, uid});
    claim.dest_uidvalidity = dest_uidvalidity;
    claim.dest_uidnext = dest_uidnext;
  }
}

void FakeSyncStore::release(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                            const std::vector<uint32_t>& uids) {
  hook("release");
  fence_check(fence);
  for (const uint32_t uid : uids) {
    const auto found = claims.find({route, uidvalidity, uid});
    expect_own(fence, found == claims.end() ? nullptr : &found->second);
  }
  for (const uint32_t uid : uids) claims.erase({route, uidvalidity, uid});
}

std::map<uint32_t, int> FakeSyncStore::failure_retry_counts(const std::string& route,
                                                            uint32_t uidvalidity,
                                                            const std::vector<uint32_t>& uids) {
  hook("failure_retry_counts");
  std::map<uint32_t, int> out;
  for (const uint32_t uid : uids)
    if (const auto found = failures.find({route, uidvalidity, uid}); found != failures.end())
      out[uid] = found->second.retry_count;
  return out;
}

std::map<uint32_t, int> FakeSyncStore::record_failures(const Fence& fence, const std::string& route,
                                                       uint32_t uidvalidity,
                                                       const std::vector<Failure>& recorded) {
  hook("record_failures");
  fence_check(fence);
  std::map<uint32_t, int> out;
  for (const auto& f : recorded) {
    const Key key{route, uidvalidity, f.uid};
    auto found = failures.find(key);
    const int count = found == failures.end() ? 0 : found->second.retry_count + 1;
    Failure stored = f;
    if (f.permanent) stored.next_retry_at.reset();
    failures[key] = {stored, count};
    out[f.uid] = count;
  }
  return out;
}

std::vector<uint32_t> FakeSyncStore::due_failures(const std::string& route, uint32_t uidvalidity,
                                                  TimePoint now) {
  hook("due_failures");
  std::vector<uint32_t> out;
  for (const auto& [key, row] : failures)
    if (std::get<0>(key) == route && std::get<1>(key) == uidvalidity && !row.failure.permanent &&
        row.failure.next_retry_at && *row.failure.next_retry_at <= now)
      out.push_back(std::get<2>(key));
  return out;
}

std::set<uint32_t> FakeSyncStore::failed_uids(const std::string& route, uint32_t uidvalidity) {
  hook("failed_uids");
  std::set<uint32_t> out;
  for (const auto& [key, row] : failures)
    if (std::get<0>(key) == route && std::get<1>(key) == uidvalidity) out.insert(std::get<2>(key));
  return out;
}

std::set<uint32_t> FakeSyncStore::copied_uids_above(const std::string& route, uint32_t uidvalidity,
                                                    uint32_t above_uid) {
  hook("copied_uids_above");
  std::set<uint32_t> out;
  for (const auto& [key, claim] : claims)
    if (std::get<0>(key) == route && std::get<1>(key) == uidvalidity &&
        std::get<2>(key) > above_uid && claim.state == "DONE")
      out.insert(std::get<2>(key));
  return out;
}

SyncStore::Adopted FakeSyncStore::adopt_pending(const Fence& fence, const std::string& route,
                                                std::chrono::milliseconds) {
  hook("adopt_pending");
  fence_check(fence);
  Adopted out;
  for (auto& [key, claim] : claims) {
    if (std::get<0>(key) != route || claim.state != "PENDING") continue;
    if (claim.job_id == fence.job_id && claim.attempt == fence.attempt) continue;
    if (running_attempts.contains({claim.job_id, claim.attempt})) {
      ++out.in_doubt;
      continue;
    }
    claim.job_id = fence.job_id;
    claim.attempt = fence.attempt;
    out.claims.push_back({std::get<1>(key), std::get<2>(key), claim.message_id, claim.size,
                          claim.sha256_hex, claim.gm_msgid, claim.internaldate,
                          claim.dest_uidvalidity, claim.dest_uidnext});
  }
  return out;
}

std::set<uint64_t> FakeSyncStore::copied_gm_msgids(const std::string& route,
                                                   const std::vector<uint64_t>& ids) {
  hook("copied_gm_msgids");
  std::set<uint64_t> out;
  for (const auto& [key, claim] : claims)
    if (std::get<0>(key) == route && claim.state == "DONE" && claim.gm_msgid &&
        std::find(ids.begin(), ids.end(), *claim.gm_msgid) != ids.end())
      out.insert(*claim.gm_msgid);
  return out;
}

bool FakeSyncStore::copied_message(const std::string& route,
                                   const std::optional<std::string>& message_id,
                                   const std::string& sha256_hex) {
  hook("copied_message");
  for (const auto& [key, claim] : claims)
    if (std::get<0>(key) == route && claim.state == "DONE" && claim.sha256_hex == sha256_hex &&
        claim.message_id == message_id)
      return true;
  return false;
}

void FakeSyncStore::set_outcome(const std::string& route, const std::string& outcome,
                                const std::string& error, bool) {
  hook("set_outcome");
  outcomes[route] = error.empty() ? outcome : outcome + ": " + error;
}

void FakeSyncStore::set_auth_required(const std::string& route, const std::string&) {
  hook("set_auth_required");
  auth_required_routes.insert(route);
}

void FakeSyncStore::set_progress(const std::string& route, const Progress& p) {
  hook("set_progress");
  progress[route] = p;
  ++progress_writes;
}

void FakeSyncStore::clear_progress(const std::string& route) {
  hook("clear_progress");
  progress.erase(route);
}

bool FakeSyncStore::auth_required(const std::string& route) {
  hook("auth_required");
  return auth_required_routes.contains(route);
}

// ---- FakeStateMirror -----------------------------------------------------------------------

void FakeStateMirror::hook(std::string_view operation) {
  if (before) before(operation);
}

void FakeStateMirror::check_gate() {
  std::lock_guard lock(mutex_);
  ++gate_checks;
  hook("check_gate");
  if (!reachable) throw MirrorUnavailable("connection refused (DynamoDB)");
}

std::optional<Watermark> FakeStateMirror::carried_over_watermark() {
  std::lock_guard lock(mutex_);
  hook("carried_over_watermark");
  return watermark;
}

std::map<uint32_t, std::string> FakeStateMirror::claim(uint32_t uidvalidity,
                                                       const std::vector<MirrorClaim>& claims) {
  std::lock_guard lock(mutex_);
  ++claim_calls;
  hook("claim");
  std::map<uint32_t, std::string> refused;
  for (const auto& c : claims) {
    const auto key = std::make_pair(uidvalidity, c.uid);
    const auto found = uid_items.find(key);
    if (found == uid_items.end()) {
      uid_items[key] = {"PENDING", c.sha256_hex, c.message_id, "mailsync:run"};
    } else if (found->second.status == "PENDING" &&
               found->second.claimed_by.starts_with("mailsync:")) {
      found->second = {"PENDING", c.sha256_hex, c.message_id, "mailsync:run"};  // taken over
    } else {
      refused[c.uid] = found->second.status;
    }
  }
  return refused;
}

void FakeStateMirror::record(uint32_t uidvalidity, const std::vector<MirrorClaim>& done,
                             const std::vector<MirrorFailure>& failures) {
  std::lock_guard lock(mutex_);
  hook("record");
  for (const auto& c : done)
    uid_items[{uidvalidity, c.uid}] = {"DONE", c.sha256_hex, c.message_id, "mailsync:run"};
  for (const auto& f : failures) fail_items[{uidvalidity, f.uid}] = f;
}

void FakeStateMirror::release(uint32_t uidvalidity, const std::vector<uint32_t>& uids) {
  std::lock_guard lock(mutex_);
  hook("release");
  for (const uint32_t uid : uids) {
    const auto found = uid_items.find({uidvalidity, uid});
    if (found != uid_items.end() && found->second.status == "PENDING" &&
        found->second.claimed_by.starts_with("mailsync:"))
      uid_items.erase(found);
  }
}

void FakeStateMirror::set_watermark(const Watermark& w) {
  std::lock_guard lock(mutex_);
  hook("set_watermark");
  watermark = w;
}

}  // namespace mailsync::sync::fakes
