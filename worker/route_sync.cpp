#include "route_sync.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "mailsync/log.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/util/sha256.hpp"

namespace mailsync::worker {

using nlohmann::json;
using queue::JobResult;
using queue::JobStats;
using Clock = std::chrono::system_clock;

// ---- helpers -------------------------------------------------------------------------------

imap::ClientOptions imap_options(const config::Settings& settings,
                                 const config::Endpoint& endpoint) {
  imap::ClientOptions options;
  options.host = endpoint.host;
  options.port = endpoint.port;
  options.tls.ca_file = settings.tls_ca_file;
  options.tls.connect_timeout = std::chrono::seconds(20);
  options.tls.io_timeout = std::chrono::seconds(120);
  return options;
}

oauth::Credential gmail_credential(const config::Settings& settings, const config::Route& route) {
  return {oauth::Provider::kGoogle,
          settings.google_token_url,
          route.gmail_client_id,
          route.gmail_client_secret,
          route.gmail_refresh_token.value_or(config::Secret()),
          "gmail " + route.gmail_email};
}

oauth::Credential outlook_credential(const config::Settings& settings) {
  return {oauth::Provider::kMicrosoft,
          settings.ms_token_url,
          settings.ms_client_id,
          settings.ms_client_secret,
          settings.ms_refresh_token.value_or(config::Secret()),
          "outlook " + settings.outlook_email};
}

std::unique_ptr<imap::Client> ImapPool::acquire(const std::string& account) {
  {
    std::lock_guard lock(mutex_);
    auto& idle = idle_[account];
    if (!idle.empty()) {
      auto client = std::move(idle.back());
      idle.pop_back();
      return client;
    }
  }
  ++connects_;
  return connect_();
}

void ImapPool::release(const std::string& account, std::unique_ptr<imap::Client> client) {
  if (!client) return;
  std::lock_guard lock(mutex_);
  auto& idle = idle_[account];
  if (idle.size() < 4) idle.push_back(std::move(client));
}

namespace {

// "1:5,7,9:12" for ascending UIDs.
std::string sequence_set(const std::vector<uint32_t>& uids) {
  std::string out;
  for (size_t i = 0; i < uids.size();) {
    size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(uids[i]);
    if (j > i) out += ":" + std::to_string(uids[j]);
    i = j + 1;
  }
  return out;
}

std::string iso8601(Clock::time_point t) {
  const std::time_t seconds = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

// A message of a batch, held whole until it is appended (batches are bounded in bytes).
struct Fetched {
  uint32_t uid = 0;
  std::string bytes;
  std::string sha256_hex;
  std::optional<std::string> message_id;
  std::optional<std::string> internaldate;
  std::optional<uint64_t> gm_msgid;
};

// Bodies are kept per FETCH sequence number: the next body may start streaming before the
// previous message's fetched() (see FetchSink).
class BatchSink final : public imap::FetchSink {
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
    if (!data.uid || !data.body_section || found == partial_.end()) return;
    Fetched message;
    message.uid = *data.uid;
    message.sha256_hex = util::to_hex(found->second.hash.finish());
    message.message_id = mail::extract_message_id(found->second.bytes);
    message.internaldate = data.internaldate;
    message.gm_msgid = data.gm_msgid;
    message.bytes = std::move(found->second.bytes);
    partial_.erase(found);
    messages.push_back(std::move(message));
  }
  std::vector<Fetched> messages;

 private:
  struct Partial {
    std::string bytes;
    util::Sha256 hash;
  };
  std::map<uint32_t, Partial> partial_;
};

// Hashes bodies only (reconciliation's destination check).
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

// Metadata of the candidates, before any body is fetched: sizes plan the batches.
class MetaSink final : public imap::FetchSink {
 public:
  void body_begin(uint32_t, uint64_t) override {}
  void body_data(uint32_t, std::string_view) override {}
  void fetched(const imap::FetchData& data) override {
    if (data.uid) sizes[*data.uid] = data.rfc822_size.value_or(0);
  }
  std::map<uint32_t, uint64_t> sizes;
};

// The route could not sync and a person must act (token refused, folder missing).
struct AuthFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

// ---- the run -------------------------------------------------------------------------------

struct RouteSync::Impl {
  RouteSync& s;
  int64_t job_id;
  const std::atomic<bool>& cancel;
  std::string key;
  JobStats stats;
  SyncReport report;
  std::unique_ptr<imap::Client> gmail;
  std::unique_ptr<imap::Client> outlook;
  bool outlook_healthy = true;
  int failed_messages = 0;
  std::string last_message_error;
  std::chrono::steady_clock::time_point run_started = std::chrono::steady_clock::now();
  bool progress_written = false;  // a mailsync.route_progress row exists for this run

  // Lines carry the job, run and route as fields (mailsync/log.hpp); the text is the event only.
  void log(spdlog::level::level_enum level, const std::string& text) {
    spdlog::log(level, "route_sync: {}", text);
  }

  // Adds what the run did since the last call to the process's counters (mailsync/metrics.hpp).
  JobStats published;
  void publish_counts() {
    auto& m = metrics::get();
    m.messages_appended.Increment(stats.appended - published.appended);
    m.bytes_appended.Increment(static_cast<double>(stats.bytes - published.bytes));
    m.messages_skipped.Increment(stats.skipped - published.skipped);
    published = stats;
  }

  // The counts of the run so far, for the summary line.
  nlohmann::ordered_json counts(std::string_view outcome) const {
    return {{"outcome", outcome},
            {"fetched", stats.fetched},
            {"appended", stats.appended},
            {"skipped", stats.skipped},
            {"failed", stats.failed},
            {"bytes", stats.bytes},
            {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - run_started)
                                .count()}};
  }

  // Logs in with a cached token; if the server refuses it, once more with a fresh one.
  void login(imap::Client& client, const std::string& user, const oauth::Credential& credential) {
    std::string token = s.tokens_.get(credential).value;
    try {
      client.authenticate_xoauth2(user, token);
    } catch (const imap::ImapError& e) {
      if (imap::classify(e).kind != imap::ErrorClass::Kind::kAuth) throw;
      s.tokens_.invalidate(credential, token);
      token = s.tokens_.get(credential).value;
      try {
        client.authenticate_xoauth2(user, token);
      } catch (const imap::ImapError& again) {
        if (imap::classify(again).kind != imap::ErrorClass::Kind::kAuth) throw;
        throw AuthFailure(credential.label +
                          ": IMAP login refused a fresh access token: " + again.what());
      }
    }
  }

  imap::Client& destination() {
    if (!outlook) {
      outlook = s.outlook_.acquire(s.route_.outlook_email);
      if (!outlook->authenticated())
        login(*outlook, s.route_.outlook_email, outlook_credential(s.settings_));
    }
    return *outlook;
  }

  // DynamoDB sort keys of DESIGN section 5: UID#<uidvalidity>#<uid>, FAIL#<uidvalidity>#<uid>.
  static std::string uid_sk(uint32_t uidvalidity, uint32_t uid) {
    return "UID#" + std::to_string(uidvalidity) + "#" + std::to_string(uid);
  }
  // When DynamoDB may expire an item (epoch seconds in `ttl`).
  json expiry() const {
    return dynamo::N(std::chrono::duration_cast<std::chrono::seconds>(
                         (s.options_.now() + s.options_.dynamo_ttl).time_since_epoch())
                         .count());
  }

  json uid_item(uint32_t uidvalidity, uint32_t uid, const std::string& status,
                const std::optional<std::string>& id, const std::string& sha) const {
    json item = {{"PK", dynamo::S(key)},
                 {"SK", dynamo::S(uid_sk(uidvalidity, uid))},
                 {"status", dynamo::S(status)},
                 {"rfc822_sha256", dynamo::S(sha)},
                 {"ttl", expiry()}};
    if (id) item["message_id_header"] = dynamo::S(*id);
    if (status == "DONE") item["copied_at"] = dynamo::S(iso8601(s.options_.now()));
    return item;
  }

  // The claim lanes' own clients (one kept-alive connection each, for the whole job). Claims are
  // taken on the preparing thread while the main thread uses s.dynamo_ for the batch before.
  std::vector<std::unique_ptr<dynamo::DynamoClient>> lane_clients;

  // DynamoDB side of the claims, in parallel (each conditional put is one round trip): true for
  // the UIDs this run now holds there too.
  std::map<uint32_t, std::string> mirror_claims(uint32_t uidvalidity,
                                                const std::vector<const Fetched*>& claimed) {
    std::map<uint32_t, std::string> refused;  // uid -> the other writer's status
    if (claimed.empty()) return refused;
    const size_t lanes = std::min<size_t>(8, claimed.size());
    // One client (one kept-alive connection) per lane for the whole job, not one per batch.
    while (lane_clients.size() < lanes)
      lane_clients.push_back(std::make_unique<dynamo::DynamoClient>(s.dynamo_.options()));
    std::vector<std::future<std::map<uint32_t, std::string>>> futures;
    for (size_t lane = 0; lane < lanes; ++lane) {
      futures.push_back(std::async(std::launch::async, [&, lane] {
        std::map<uint32_t, std::string> lane_refused;
        dynamo::DynamoClient& db = *lane_clients[lane];
        for (size_t i = lane; i < claimed.size(); i += lanes) {
          const Fetched& m = *claimed[i];
          if (db.put_if_absent(uid_item(uidvalidity, m.uid, "PENDING", m.message_id, m.sha256_hex)))
            continue;
          const auto existing = db.get(key, uid_sk(uidvalidity, m.uid));
          const std::string status = existing ? (*existing)["status"].value("S", "") : "";
          // Our own PENDING item from an earlier, interrupted run is ours to continue with.
          if (status != "PENDING" || (*existing)["rfc822_sha256"].value("S", "") != m.sha256_hex)
            lane_refused[m.uid] = status.empty() ? "unknown" : status;
        }
        return lane_refused;
      }));
    }
    for (auto& future : futures) refused.merge(future.get());
    return refused;
  }

  // Claims left PENDING by a crash: find them in the destination (Message-ID, else size; then the
  // SHA-256 must match) before anything is appended again.
  void reconcile() {
    const auto pending = s.store_.pending_claims(key);
    if (pending.empty()) return;
    imap::Client& dest = destination();
    dest.examine(s.route_.target_folder);
    for (const auto& claim : pending) {
      std::vector<uint32_t> candidates;
      if (claim.message_id && claim.message_id->find_first_of("\r\n") == std::string::npos &&
          std::all_of(claim.message_id->begin(), claim.message_id->end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
        candidates = dest.uid_search(imap::SearchCriteria::header("Message-ID", *claim.message_id));
      } else if (claim.size) {
        candidates = dest.uid_search(imap::SearchCriteria::size_between(*claim.size, *claim.size));
      }
      std::optional<uint32_t> found;
      if (!candidates.empty() && !claim.sha256_hex.empty()) {
        HashSink hashes;
        dest.uid_fetch(sequence_set(candidates), "(UID BODY.PEEK[])", hashes);
        for (const auto& [uid, sha] : hashes.hashes)
          if (sha == claim.sha256_hex) found = uid;
      }
      if (found) {
        s.store_.finalize(key, claim.uidvalidity,
                          {{claim.uid, std::nullopt, *found, claim.message_id, claim.sha256_hex,
                            claim.size.value_or(0)}});
        s.dynamo_.put(
            uid_item(claim.uidvalidity, claim.uid, "DONE", claim.message_id, claim.sha256_hex));
        log(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                     ": already in the destination as UID " +
                                     std::to_string(*found));
      } else {
        s.store_.release(key, claim.uidvalidity, {claim.uid});
        s.dynamo_.remove_pending(key, uid_sk(claim.uidvalidity, claim.uid));
        log(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                     ": not in the destination; copying it again");
      }
    }
  }

  void ensure_folder() {
    imap::Client& dest = destination();
    if (s.route_.create_folder) {
      if (dest.create(s.route_.target_folder))
        log(spdlog::level::info, "created folder " + s.route_.target_folder);
      return;
    }
    if (dest.list("", s.route_.target_folder).empty())
      throw AuthFailure(
          "folder '" + s.route_.target_folder +
          "' does not exist in the destination and create_folder is false; create it or set "
          "create_folder to true");
  }

  std::chrono::milliseconds message_backoff(int attempt) const {
    return std::min<std::chrono::milliseconds>(
        std::chrono::minutes(1) * (1 << std::min(attempt, 10)), std::chrono::hours(6));
  }

  // Milliseconds spent per phase, for the per-batch debug line.
  struct PhaseClock {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    std::string text;
    void mark(const char* phase) {
      const auto now = std::chrono::steady_clock::now();
      text += std::string(text.empty() ? "" : ", ") + phase + " " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count()) +
              " ms";
      last = now;
    }
  };

  // The store is one connection: the preparing thread and the main thread take turns on it.
  std::mutex store_mutex;
  template <typename Fn>
  decltype(auto) db(Fn&& body) {
    std::lock_guard lock(store_mutex);
    return body(s.store_);
  }

  // A batch fetched and claimed (Postgres, then DynamoDB): ready to APPEND.
  struct Prepared {
    std::vector<Fetched> messages;
    std::vector<const Fetched*> appending;  // claimed here and in DynamoDB
    std::vector<sync::Copied> copied;       // another writer (the old Lambda) copied them
    std::vector<sync::Failure> failures;    // another writer holds the DynamoDB claim
    std::set<uint32_t> handled;             // skipped: copied before
    int skipped = 0;
    std::vector<std::string> would_copy;  // dry run
    PhaseClock phases;
  };

  // Fetch and claim one batch. Runs on a second thread while the main thread appends the batch
  // before, so it touches only the Gmail connection, the claim lanes and (locked) the store.
  std::unique_ptr<Prepared> prepare(uint32_t uidvalidity, const std::vector<uint32_t>& uids,
                                    const std::string& items, bool dedupe) {
    auto p = std::make_unique<Prepared>();
    BatchSink sink;
    gmail->uid_fetch(sequence_set(uids), items, sink);
    p->messages = std::move(sink.messages);
    std::sort(p->messages.begin(), p->messages.end(),
              [](const Fetched& a, const Fetched& b) { return a.uid < b.uid; });
    p->phases.mark("fetch");

    std::vector<const Fetched*> to_copy;
    if (dedupe) {
      std::vector<uint64_t> ids;
      for (const auto& m : p->messages)
        if (m.gm_msgid) ids.push_back(*m.gm_msgid);
      db([&](sync::SyncStore& store) {
        const auto copied_ids = store.copied_gm_msgids(key, ids);
        for (const auto& m : p->messages) {
          const bool copied = m.gm_msgid ? copied_ids.contains(*m.gm_msgid)
                                         : store.copied_message(key, m.message_id, m.sha256_hex);
          if (copied) {
            ++p->skipped;
            p->handled.insert(m.uid);
          } else {
            to_copy.push_back(&m);
          }
        }
      });
    } else {
      for (const auto& m : p->messages) to_copy.push_back(&m);
    }
    if (s.options_.dry_run) {
      for (const Fetched* m : to_copy)
        p->would_copy.push_back("UID " + std::to_string(m->uid) + " " +
                                std::to_string(m->bytes.size()) + " bytes " +
                                m->message_id.value_or("(no Message-ID)"));
      return p;
    }

    std::vector<sync::SyncStore::ClaimRequest> requests;
    for (const Fetched* m : to_copy)
      requests.push_back(
          {m->uid, m->message_id, m->sha256_hex, static_cast<int64_t>(m->bytes.size())});
    const auto claims =
        db([&](sync::SyncStore& store) { return store.claim(key, uidvalidity, requests, job_id); });
    p->phases.mark("claim");
    std::vector<const Fetched*> claimed;
    for (const Fetched* m : to_copy) {
      const auto& state = claims.at(m->uid);
      if (state.kind == sync::ClaimState::Kind::kDone) {
        ++p->skipped;
        p->handled.insert(m->uid);
      } else if (state.kind == sync::ClaimState::Kind::kClaimed) {
        claimed.push_back(m);
      }
      // kPending: claimed by a run in flight elsewhere (run-once beside a worker); left alone, and
      // the watermark waits for it.
    }
    const auto refused = mirror_claims(uidvalidity, claimed);
    p->phases.mark("mirror claims");
    for (const Fetched* m : claimed) {
      if (const auto other = refused.find(m->uid); other != refused.end()) {
        if (other->second == "DONE") {  // another writer (the old Lambda) copied it
          p->copied.push_back({m->uid, std::nullopt, std::nullopt, m->message_id, m->sha256_hex,
                               static_cast<int64_t>(m->bytes.size()), std::nullopt, m->gm_msgid});
          ++p->skipped;
        } else {
          p->failures.push_back({m->uid, "claimed_elsewhere",
                                 "another writer holds the DynamoDB claim (" + other->second + ")",
                                 false, s.options_.now() + std::chrono::minutes(5), m->message_id,
                                 static_cast<int64_t>(m->bytes.size())});
        }
        continue;
      }
      p->appending.push_back(m);
    }
    return p;
  }

  // A prepared batch that will not be appended (the run stops): its claims are given back, so the
  // next run copies those messages without a destination search first.
  void abandon(uint32_t uidvalidity, const Prepared& p) {
    std::vector<uint32_t> uids;
    for (const Fetched* m : p.appending) uids.push_back(m->uid);
    if (uids.empty()) return;
    db([&](sync::SyncStore& store) { store.release(key, uidvalidity, uids); });
    for (const uint32_t uid : uids) s.dynamo_.remove_pending(key, uid_sk(uidvalidity, uid));
  }

  // APPEND -> finalize (Postgres, then the mirror). Returns the UIDs now handled (DONE, skipped
  // or recorded as failures); UIDs left PENDING are not.
  std::set<uint32_t> commit(uint32_t uidvalidity, Prepared& p) {
    std::set<uint32_t> handled = p.handled;
    if (s.options_.dry_run) return handled;
    std::vector<sync::Copied>& copied = p.copied;
    std::vector<sync::Failure>& failures = p.failures;
    const std::vector<const Fetched*>& appending = p.appending;
    PhaseClock& phases = p.phases;
    phases.last = std::chrono::steady_clock::now();
    std::vector<imap::AppendMessage> messages;
    for (const Fetched* m : appending) {
      imap::AppendMessage message{m->bytes, {}, m->internaldate};
      if (s.route_.mark_seen) message.flags.push_back("\\Seen");
      messages.push_back(message);
    }
    std::vector<imap::AppendOutcome> outcomes;
    try {
      if (!messages.empty()) outcomes = destination().append_many(s.route_.target_folder, messages);
    } catch (const std::exception& e) {
      // The connection broke mid-batch: what was appended is unknown. The claims stay PENDING and
      // the next run reconciles them before appending anything again.
      outlook_healthy = false;
      db([&](sync::SyncStore& store) {
        store.finalize(key, uidvalidity, copied);
        store.record_failures(key, uidvalidity, failures);
      });
      for (const auto& f : failures) handled.insert(f.uid);
      for (const auto& c : copied) handled.insert(c.uid);
      throw;
    }
    phases.mark("append");
    std::vector<uint32_t> released;
    std::vector<json> dynamo_done, dynamo_failed;
    for (size_t i = 0; i < appending.size(); ++i) {
      const Fetched& m = *appending[i];
      if (const auto* ok = std::get_if<imap::AppendResult>(&outcomes[i])) {
        std::optional<Clock::time_point> date;
        if (m.internaldate)
          if (const auto parsed = mail::parse_internaldate(*m.internaldate)) date = parsed->instant;
        copied.push_back({m.uid, ok->uidvalidity, ok->uid, m.message_id, m.sha256_hex,
                          static_cast<int64_t>(m.bytes.size()), date, m.gm_msgid});
        dynamo_done.push_back(uid_item(uidvalidity, m.uid, "DONE", m.message_id, m.sha256_hex));
        ++stats.appended;
        stats.bytes += static_cast<int64_t>(m.bytes.size());
      } else {
        const auto& error = std::get<imap::ImapError>(outcomes[i]);
        const imap::ErrorClass judged = imap::classify(error);
        const bool permanent = judged.kind == imap::ErrorClass::Kind::kPermanent;
        const auto retry_at =
            s.options_.now() +
            (judged.retry_after.count() > 0 ? judged.retry_after : message_backoff(0));
        failures.push_back({m.uid, judged.reason, error.what(), permanent,
                            permanent ? std::nullopt : std::optional(retry_at), m.message_id,
                            static_cast<int64_t>(m.bytes.size())});
        released.push_back(m.uid);
        last_message_error = error.what();
        log(permanent ? spdlog::level::err : spdlog::level::warn,
            "UID " + std::to_string(m.uid) + " not copied (" +
                (permanent ? "permanent" : "will retry") + "): " + error.what());
      }
    }
    // Postgres first (the truth), then the mirror.
    const std::map<uint32_t, int> retries = db([&](sync::SyncStore& store) {
      store.finalize(key, uidvalidity, copied);
      store.release(key, uidvalidity, released);
      return store.record_failures(key, uidvalidity, failures);
    });
    phases.mark("finalize");
    for (const auto& f : failures) {
      dynamo_failed.push_back(
          {{"PK", dynamo::S(key)},
           {"SK", dynamo::S("FAIL#" + std::to_string(uidvalidity) + "#" + std::to_string(f.uid))},
           {"last_error", dynamo::S(f.error)},
           {"retry_count", dynamo::N(retries.contains(f.uid) ? retries.at(f.uid) : 0)},
           {"updated_at", dynamo::S(iso8601(s.options_.now()))},
           {"ttl", expiry()}});
      if (std::find(released.begin(), released.end(), f.uid) != released.end())
        s.dynamo_.remove_pending(key, uid_sk(uidvalidity, f.uid));
    }
    dynamo_done.insert(dynamo_done.end(), dynamo_failed.begin(), dynamo_failed.end());
    s.dynamo_.batch_put(dynamo_done);
    phases.mark("mirror done");
    stats.failed += static_cast<int>(failures.size());
    failed_messages += static_cast<int>(failures.size());
    for (const auto& f : failures)
      metrics::of(metrics::get().message_failures, "reason", f.reason).Increment();
    publish_counts();
    for (const auto& c : copied) handled.insert(c.uid);
    for (const auto& f : failures) handled.insert(f.uid);
    return handled;
  }

  std::optional<sync::Watermark>
      stored_mark;        // what the store holds, to skip writes that change nothing
  PhaseClock job_phases;  // per-job timings for the debug line

  void set_watermark(uint32_t uidvalidity, uint32_t last_uid) {
    if (s.options_.dry_run) return;
    if (stored_mark && stored_mark->uidvalidity == uidvalidity && stored_mark->last_uid >= last_uid)
      return;
    stored_mark = sync::Watermark{uidvalidity, last_uid};
    db([&](sync::SyncStore& store) { store.set_watermark(key, {uidvalidity, last_uid}); });
    s.dynamo_.put({{"PK", dynamo::S(key)},
                   {"SK", dynamo::S("WATERMARK")},
                   {"uidvalidity", dynamo::N(uidvalidity)},
                   {"last_uid", dynamo::N(last_uid)},
                   {"updated_at", dynamo::S(iso8601(s.options_.now()))}});
    report.watermark = last_uid;
  }

  SyncReport run() {
    const config::Route& route = s.route_;
    key = route.key();
    s.store_.ensure_route(route);
    if (s.store_.auth_required(key)) {
      report.result = JobResult::cancelled(
          "auth_required: fix the credentials, then `mailsync resume " + route.gmail_email + "`");
      return report;
    }

    job_phases.mark("state");
    // 1. The gate: no IMAP work while DynamoDB is unreachable (invariant 6).
    s.dynamo_.check_table();
    job_phases.mark("gate");

    // 2-3. Tokens and the source, read-only (invariant 1).
    imap::MailboxInfo inbox;
    for (int tries = 0;; ++tries) {
      gmail = s.gmail_pool_
                  ? s.gmail_pool_->acquire(route.gmail_email)
                  : imap::Client::connect(imap_options(s.settings_, s.settings_.gmail_imap));
      const bool reused = gmail->authenticated();
      job_phases.mark(reused ? "pooled connection" : "new connection");
      try {
        if (!reused) login(*gmail, route.gmail_email, gmail_credential(s.settings_, route));
        job_phases.mark("login");
        inbox = gmail->examine("INBOX");
        break;
      } catch (const std::exception& e) {
        // A pooled connection the server closed meanwhile (idle timeout, "Session expired"): once
        // more on a new one.
        const bool connection_problem = dynamic_cast<const imap::ImapError*>(&e) != nullptr ||
                                        dynamic_cast<const net::TransportError*>(&e) != nullptr;
        if (!reused || tries > 0 || !connection_problem) throw;
        gmail.reset();
      }
    }
    const bool gmail_ext = gmail->has("X-GM-EXT-1");
    job_phases.mark("examine");

    // 4. Where to start.
    std::optional<sync::Watermark> watermark = s.store_.watermark(key);
    stored_mark = watermark;
    if (!watermark) {  // a table carried over from the Lambda version
      if (const auto item = s.dynamo_.get(key, "WATERMARK")) {
        watermark = sync::Watermark{
            static_cast<uint32_t>(std::stoul((*item)["uidvalidity"].value("N", "0"))),
            static_cast<uint32_t>(std::stoul((*item)["last_uid"].value("N", "0")))};
        log(spdlog::level::info,
            "starting from DynamoDB's WATERMARK (UID " + std::to_string(watermark->last_uid) + ")");
      }
    }
    const uint32_t last_existing = inbox.uidnext > 0 ? inbox.uidnext - 1 : 0;
    std::vector<uint32_t> candidates;
    bool dedupe = false;
    uint32_t floor = 0;  // the watermark may move to at least this once everything is handled
    const auto window_start = s.options_.now() - std::chrono::hours(route.fallback_window_hours);
    if (watermark && watermark->uidvalidity == inbox.uidvalidity) {
      floor = watermark->last_uid;
      for (const uint32_t uid :
           gmail->uid_search(imap::SearchCriteria::uid_range(watermark->last_uid + 1)))
        if (uid > watermark->last_uid) candidates.push_back(uid);
      for (const uint32_t uid : s.store_.due_failures(key, inbox.uidvalidity, s.options_.now()))
        candidates.push_back(uid);
    } else if (watermark) {
      log(spdlog::level::warn,
          "UIDVALIDITY changed from " + std::to_string(watermark->uidvalidity) + " to " +
              std::to_string(inbox.uidvalidity) + "; re-reading the last " +
              std::to_string(route.fallback_window_hours) + " h and skipping what was copied");
      candidates = gmail->uid_search(imap::SearchCriteria::since(window_start));
      dedupe = true;
      floor = last_existing;
    } else if (route.initial_sync == config::InitialSync::kAll) {
      candidates = gmail->uid_search(imap::SearchCriteria::all());
    } else if (route.initial_sync == config::InitialSync::kWindow) {
      candidates = gmail->uid_search(imap::SearchCriteria::since(window_start));
      dedupe = true;
      floor = last_existing;
    } else {
      floor = last_existing;  // "none": only what arrives from now on
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    if (!candidates.empty() && floor >= candidates.front())
      floor = std::min(floor, candidates.front() - 1);

    job_phases.mark("plan");
    // 5. Crash leftovers, then the destination folder.
    if (!s.options_.dry_run) {
      reconcile();
      if (!candidates.empty()) ensure_folder();
    }

    job_phases.mark("reconcile");
    // 6. Sizes first, to cut bounded batches; then fetch, claim, append, finalize per batch.
    MetaSink meta;
    for (size_t i = 0; i < candidates.size(); i += 2000) {
      const std::vector<uint32_t> chunk(
          candidates.begin() + static_cast<long>(i),
          candidates.begin() + static_cast<long>(std::min(candidates.size(), i + 2000)));
      gmail->uid_fetch(sequence_set(chunk), "(UID RFC822.SIZE)", meta);
    }
    std::vector<uint32_t> present;
    for (const uint32_t uid : candidates)
      if (meta.sizes.contains(uid)) present.push_back(uid);
    const std::set<uint32_t> failed_before = s.store_.failed_uids(key, inbox.uidvalidity);
    std::set<uint32_t> handled;
    for (const uint32_t uid : candidates)
      if (!meta.sizes.contains(uid))
        handled.insert(uid);  // expunged since the search: nothing to copy
    const std::string items = std::string("(UID RFC822.SIZE INTERNALDATE BODY.PEEK[]") +
                              (gmail_ext ? " X-GM-MSGID)" : ")");
    bool stopped = false;
    // Progress of a long run (a first import of a whole INBOX): every 10 s at info level.
    uint64_t total_bytes = 0;
    for (const uint32_t uid : present) total_bytes += meta.sizes[uid];
    const auto started = std::chrono::steady_clock::now();
    auto last_progress = started;
    auto last_progress_log = started;
    size_t done_messages = 0;
    uint64_t done_bytes = 0;
    uint32_t mark = floor;  // the watermark so far
    size_t mark_at = 0;     // candidates[0, mark_at) are all handled
    // The batches: at most batch_messages and batch_bytes each (a larger message goes alone).
    struct Planned {
      std::vector<uint32_t> uids;
      uint64_t bytes = 0;
    };
    std::vector<Planned> plan;
    for (size_t i = 0; i < present.size();) {
      Planned batch;
      while (
          i < present.size() && batch.uids.size() < s.options_.batch_messages &&
          (batch.uids.empty() || batch.bytes + meta.sizes[present[i]] <= s.options_.batch_bytes)) {
        batch.bytes += meta.sizes[present[i]];
        batch.uids.push_back(present[i++]);
      }
      plan.push_back(std::move(batch));
    }
    auto prepare_batch = [&](size_t b) {
      return prepare(inbox.uidvalidity, plan[b].uids, items, dedupe);
    };
    // Pipelined: while batch b is appended and finalized here, batch b + 1 is fetched and claimed
    // on a second thread (the Gmail connection, the claim lanes), so the claims' round trips hide
    // behind the APPEND. Two batches of normal size at most are in memory; a batch holding one
    // message larger than batch_bytes is never overlapped with another.
    std::future<std::unique_ptr<Prepared>> next;
    // A batch prepared ahead that will not be appended (the run failed or stops): its claims are
    // given back.
    auto settle_next = [&] {
      if (!next.valid()) return;
      try {
        abandon(inbox.uidvalidity, *next.get());
      } catch (const std::exception& e) {
        log(spdlog::level::warn, std::string("the next batch, prepared meanwhile, failed too: ") +
                                     e.what() +
                                     " (its claims stay PENDING and the next run reconciles them)");
      }
    };
    for (size_t b = 0; b < plan.size() && !stopped; ++b) {
      std::unique_ptr<Prepared> current = next.valid() ? next.get() : prepare_batch(b);
      if (b + 1 < plan.size() && plan[b].bytes <= s.options_.batch_bytes &&
          plan[b + 1].bytes <= s.options_.batch_bytes)
        next = std::async(std::launch::async, [&, b, context = log::context()] {
          const log::ContextScope scope(context);
          return prepare_batch(b + 1);
        });
      const uint64_t bytes = plan[b].bytes;
      stats.fetched += static_cast<int>(current->messages.size());
      stats.skipped += current->skipped;
      report.would_copy.insert(report.would_copy.end(), current->would_copy.begin(),
                               current->would_copy.end());
      std::set<uint32_t> done;
      try {
        done = commit(inbox.uidvalidity, *current);
      } catch (...) {
        settle_next();
        throw;
      }
      handled.insert(done.begin(), done.end());
      done_messages += plan[b].uids.size();
      done_bytes += bytes;
      // Progress of a run with more to do: in the database (for `mailsync status`) after the
      // first batch and every 5 s, in the log every 10 s.
      if (const auto now = std::chrono::steady_clock::now();
          b + 1 < plan.size() && !s.options_.dry_run &&
          (!progress_written || now - last_progress >= std::chrono::seconds(5))) {
        const double seconds = std::max(std::chrono::duration<double>(now - started).count(), 1e-3);
        const double rate = static_cast<double>(done_messages) / seconds;
        const double left =
            rate > 0 ? static_cast<double>(present.size() - done_messages) / rate : 0.0;
        const sync::Progress progress{job_id,
                                      seconds,
                                      static_cast<int64_t>(done_messages),
                                      static_cast<int64_t>(present.size()),
                                      static_cast<int64_t>(done_bytes),
                                      static_cast<int64_t>(total_bytes),
                                      rate,
                                      static_cast<int64_t>(left)};
        db([&](sync::SyncStore& store) { store.set_progress(key, progress); });
        progress_written = true;
        last_progress = now;
        if (now - last_progress_log >= std::chrono::seconds(10)) {
          last_progress_log = now;
          char line[200];
          std::snprintf(
              line, sizeof line,
              "progress: %zu of %zu messages, %.1f of %.1f MB, %.0f msgs/s, about %.0f s left",
              done_messages, present.size(), static_cast<double>(done_bytes) / 1e6,
              static_cast<double>(total_bytes) / 1e6, rate, left);
          log::event(spdlog::level::info, line,
                     {{"messages_done", done_messages},
                      {"messages_total", present.size()},
                      {"bytes_done", done_bytes},
                      {"bytes_total", total_bytes},
                      {"rate_per_s", static_cast<int64_t>(rate)},
                      {"eta_seconds", static_cast<int64_t>(left)}});
        }
      }
      // Invariant 4: the watermark passes only UIDs that are DONE, skipped or recorded as failures.
      // `handled` only grows, so the scan goes on from where the last batch left it.
      while (mark_at < candidates.size() &&
             (handled.contains(candidates[mark_at]) || failed_before.contains(candidates[mark_at])))
        mark = std::max(mark, candidates[mark_at++]);
      if (mark > 0) set_watermark(inbox.uidvalidity, mark);
      current->phases.mark("watermark");
      log(spdlog::level::debug, "batch of " + std::to_string(plan[b].uids.size()) + " (" +
                                    std::to_string(bytes) + " bytes): " + current->phases.text);
      stopped = cancel.load();
    }
    settle_next();  // stopped with a batch claimed but not appended
    if (candidates.empty() && (floor > 0 || !watermark)) set_watermark(inbox.uidvalidity, floor);
    if (stopped) {
      report.result =
          JobResult::retry(s.options_.now(), "stopped between batches (shutdown)", stats);
      return report;
    }
    const std::string detail =
        failed_messages > 0
            ? std::to_string(failed_messages) + " messages not copied, last: " + last_message_error
            : "";
    if (!s.options_.dry_run) s.store_.set_outcome(key, "succeeded", detail, true);
    job_phases.mark("outcome");
    log(spdlog::level::debug, "phases: " + job_phases.text);
    publish_counts();
    auto summary = counts("succeeded");
    summary["watermark"] = report.watermark;
    log::event(spdlog::level::info,
               "route_sync done: " + std::to_string(stats.appended) + " appended, " +
                   std::to_string(stats.skipped) + " skipped, " + std::to_string(stats.failed) +
                   " failed",
               summary);
    report.result = JobResult::succeeded(stats);
    return report;
  }
};

RouteSync::RouteSync(const config::Settings& settings, const config::Route& route,
                     oauth::TokenProvider& tokens, sync::SyncStore& store,
                     dynamo::DynamoClient& dynamo, ImapPool& outlook, SyncOptions options,
                     ImapPool* gmail)
    : settings_(settings),
      route_(route),
      tokens_(tokens),
      store_(store),
      dynamo_(dynamo),
      outlook_(outlook),
      options_(std::move(options)),
      gmail_pool_(gmail) {}

SyncReport RouteSync::run(int64_t job_id, const std::atomic<bool>& cancel) {
  const std::string key = route_.key();
  // Inside a worker the job's context is in place already; run-once gets a run id here.
  const log::ContextScope log_context(
      {log::context().run_id.empty() ? log::new_run_id() : "", job_id, key});
  Impl impl{*this, job_id, cancel, key, {}, {}, nullptr, nullptr, true, 0, {}};
  auto finish = [&](SyncReport report) {
    if (impl.progress_written) {
      try {
        store_.clear_progress(key);
      } catch (const std::exception&) {
        // the row stops showing by itself after two minutes (sql/0004)
      }
    }
    if (impl.outlook && impl.outlook_healthy)
      outlook_.release(route_.outlook_email, std::move(impl.outlook));
    if (impl.gmail && impl.outlook_healthy && gmail_pool_ != nullptr)
      gmail_pool_->release(route_.gmail_email, std::move(impl.gmail));
    else if (impl.gmail)
      impl.gmail->logout();
    return report;
  };
  // The route stops until a person renews its credentials (`mailsync resume` clears it).
  auto stop_for_auth = [&](const std::string& why) {
    store_.set_auth_required(key, why);
    metrics::get().routes_set_auth_required.Increment();
    impl.report.result = JobResult::cancelled("auth_required: " + why);
    return finish(std::move(impl.report));
  };
  auto fail = [&](const std::string& outcome, const std::string& error, JobResult result) {
    try {
      if (!options_.dry_run) store_.set_outcome(key, outcome, error, false);
    } catch (const std::exception&) {
    }
    impl.publish_counts();
    log::event(spdlog::level::warn, "route_sync " + outcome + ": " + error, impl.counts(outcome));
    impl.report.result = std::move(result);
    impl.report.result.stats = impl.stats;
    return finish(std::move(impl.report));
  };
  try {
    return finish(impl.run());
  } catch (const dynamo::DynamoError& e) {
    metrics::get().gate_failures.Increment();
    return fail("gate_unavailable", e.what(),
                JobResult::failed(std::string("gate unavailable: ") + e.what()));
  } catch (const oauth::AuthRequired& e) {
    log::event(spdlog::level::err, std::string("route_sync auth_required: ") + e.what(),
               impl.counts("auth_required"));
    return stop_for_auth(e.what());
  } catch (const AuthFailure& e) {
    const bool folder = std::string(e.what()).find("create_folder") != std::string::npos;
    if (!folder) return stop_for_auth(e.what());
    return fail("failed", e.what(), JobResult::dead(e.what()));
  } catch (const oauth::TokenUnavailable& e) {
    return fail("failed", e.what(), JobResult::failed(e.what()));
  } catch (const postgres::DatabaseUnavailable&) {
    impl.outlook_healthy = false;
    finish({});
    throw;  // the worker's loop handles database outages
  } catch (const std::exception& e) {
    impl.outlook_healthy = false;
    const imap::ErrorClass judged = imap::classify(std::current_exception());
    if (judged.kind == imap::ErrorClass::Kind::kThrottled && judged.retry_after.count() > 0)
      return fail("retry", e.what(),
                  JobResult::retry(options_.now() + judged.retry_after, e.what()));
    return fail("failed", e.what(), JobResult::failed(e.what()));
  }
}

}  // namespace mailsync::worker
