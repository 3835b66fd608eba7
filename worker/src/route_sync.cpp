// The orchestrator of one route_sync run, top-down: gate, source, start point, reconcile, folder,
// plan, then per batch prepare (fetch, dedupe, claim, mirror) and commit (append, finalize,
// mirror), pipelined; the watermark after each batch (invariant 4); the outcome.

#include "mailsync/sync/route_sync.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <set>

#include "mailsync/log.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/postgres/errors.hpp"
#include "mailsync/sync/batch_plan.hpp"
#include "mailsync/sync/message_retry.hpp"
#include "mailsync/sync/progress_meter.hpp"
#include "mailsync/sync/start_point.hpp"
#include "mailsync/sync/watermark_tracker.hpp"

namespace mailsync::sync {

using queue::JobStats;
using Steady = std::chrono::steady_clock;

namespace {

// Milliseconds spent per phase, for the per-batch and per-job debug lines.
struct PhaseClock {
  Steady::time_point last = Steady::now();
  std::string text;
  void mark(const char* phase) {
    const auto now = Steady::now();
    text +=
        std::string(text.empty() ? "" : ", ") + phase + " " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count()) +
        " ms";
    last = now;
  }
};

void log_line(spdlog::level::level_enum level, const std::string& text) {
  spdlog::log(level, "route_sync: {}", text);
}

// The claimed_elsewhere wait: another writer (the old Lambda) is copying the message.
constexpr std::chrono::minutes kClaimedElsewhereWait{5};

}  // namespace

RouteSync::RouteSync(const config::Route& route, SyncPorts ports, SyncOptions options)
    : route_(route), ports_(ports), options_(std::move(options)) {}

struct RouteSync::Run {
  const config::Route& route;
  SyncPorts ports;
  const SyncOptions& options;
  int64_t job_id;
  const std::atomic<bool>& cancel;
  std::string key = route.key();

  JobStats stats;
  JobStats published;
  SyncReport report;
  int failed_messages = 0;
  std::string last_message_error;
  bool connections_reusable = true;      // false once an IMAP connection may be in a broken state
  bool progress_written = false;         // a mailsync.route_progress row exists for this run
  std::optional<Watermark> stored_mark;  // what the store holds, to skip writes that change nothing
  Steady::time_point started = Steady::now();
  PhaseClock job_phases;

  // The store is one connection: the preparing thread and the main thread take turns on it.
  std::mutex store_mutex;
  template <typename Fn>
  decltype(auto) db(Fn&& body) {
    std::lock_guard lock(store_mutex);
    return body(ports.store);
  }

  // ---- the run, top-down ------------------------------------------------------------------

  SyncReport execute() {
    ports.store.ensure_route(route);
    if (ports.store.auth_required(key))
      return ended(SyncOutcome::kAuthRequired,
                   "fix the credentials, then `mailsync resume " + route.gmail_email + "`");
    job_phases.mark("state");
    ports.mirror.check_gate();  // no IMAP work while DynamoDB is unreachable (invariant 6)
    job_phases.mark("gate");
    const imap::MailboxInfo inbox = ports.source.open_inbox();  // read-only (invariant 1)
    job_phases.mark("examine");

    const StartPoint start = where_to_start(inbox);
    const std::vector<uint32_t> candidates = find_candidates(start, inbox.uidvalidity);
    job_phases.mark("plan");
    if (!options.dry_run) {
      reconcile();
      if (!candidates.empty()) ensure_folder();
    }
    job_phases.mark("reconcile");

    const std::map<uint32_t, uint64_t> sizes = ports.source.sizes(candidates);
    WatermarkTracker tracker(start.floor, candidates,
                             ports.store.failed_uids(key, inbox.uidvalidity));
    std::vector<uint32_t> present;
    for (const uint32_t uid : candidates) {
      if (sizes.contains(uid))
        present.push_back(uid);
      else
        tracker.handled(uid);  // expunged since the search: nothing to copy
    }
    const std::vector<PlannedBatch> plan =
        cut_batches(present, sizes, {options.batch_messages, options.batch_bytes});
    const bool stopped = copy(inbox.uidvalidity, plan, start.dedupe, tracker, present.size());
    if (candidates.empty() && (tracker.floor() > 0 || !start.watermark))
      set_watermark(inbox.uidvalidity, tracker.floor());
    if (stopped) return ended(SyncOutcome::kStopped, "stopped between batches (shutdown)");

    if (!options.dry_run)
      ports.store.set_outcome(key, "succeeded",
                              failed_messages > 0
                                  ? std::to_string(failed_messages) +
                                        " messages not copied, last: " + last_message_error
                                  : "",
                              true);
    job_phases.mark("outcome");
    log_line(spdlog::level::debug, "phases: " + job_phases.text);
    publish_counts();
    auto summary = counts("succeeded");
    summary["watermark"] = report.watermark;
    log::event(spdlog::level::info,
               "route_sync done: " + std::to_string(stats.appended) + " appended, " +
                   std::to_string(stats.skipped) + " skipped, " + std::to_string(stats.failed) +
                   " failed",
               summary);
    return ended(SyncOutcome::kSucceeded, "");
  }

  SyncReport ended(SyncOutcome outcome, const std::string& error,
                   std::optional<TimePoint> retry_at = std::nullopt) {
    report.outcome = outcome;
    report.result = to_job_result(outcome, error, retry_at.value_or(options.now()), stats);
    return std::move(report);
  }

  // ---- where to start ---------------------------------------------------------------------

  StartPoint where_to_start(const imap::MailboxInfo& inbox) {
    const std::optional<Watermark> stored = ports.store.watermark(key);
    stored_mark = stored;
    const StartPoint start = choose_start(
        {stored, stored ? std::nullopt : ports.mirror.carried_over_watermark(), inbox.uidvalidity,
         inbox.uidnext, route.initial_sync, route.fallback_window_hours, options.now()});
    if (start.from_carried_over)
      log_line(spdlog::level::info, "starting from DynamoDB's WATERMARK (UID " +
                                        std::to_string(start.watermark->last_uid) + ")");
    if (start.uidvalidity_changed)
      log_line(spdlog::level::warn,
               "UIDVALIDITY changed from " + std::to_string(start.watermark->uidvalidity) + " to " +
                   std::to_string(inbox.uidvalidity) + "; re-reading the last " +
                   std::to_string(route.fallback_window_hours) + " h and skipping what was copied");
    return start;
  }

  std::vector<uint32_t> find_candidates(const StartPoint& start, uint32_t uidvalidity) {
    std::vector<uint32_t> candidates;
    switch (start.search) {
      case StartPoint::Search::kAbove:
        candidates = ports.source.uids_above(start.above_uid);
        break;
      case StartPoint::Search::kSince:
        candidates = ports.source.uids_since(start.since);
        break;
      case StartPoint::Search::kAll:
        candidates = ports.source.all_uids();
        break;
      case StartPoint::Search::kNothing:
        break;
    }
    if (start.retry_failures)
      for (const uint32_t uid : ports.store.due_failures(key, uidvalidity, options.now()))
        candidates.push_back(uid);
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    return candidates;
  }

  // ---- before copying ---------------------------------------------------------------------

  // Claims left PENDING by a crash: found in the destination before anything is appended again
  // (invariant 3); DONE if they arrived, given back if not.
  void reconcile() {
    const std::vector<PendingClaim> pending = ports.store.pending_claims(key);
    if (pending.empty()) return;
    const auto arrivals = ports.destination.find_arrivals(route.target_folder, pending);
    for (size_t i = 0; i < pending.size(); ++i) {
      const PendingClaim& claim = pending[i];
      if (const auto found = arrivals[i]) {
        ports.store.finalize(key, claim.uidvalidity,
                             {{claim.uid, std::nullopt, *found, claim.message_id, claim.sha256_hex,
                               claim.size.value_or(0)}});
        ports.mirror.record(claim.uidvalidity, {{claim.uid, claim.message_id, claim.sha256_hex}},
                            {});
        log_line(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                          ": already in the destination as UID " +
                                          std::to_string(*found));
      } else {
        ports.store.release(key, claim.uidvalidity, {claim.uid});
        ports.mirror.release(claim.uidvalidity, {claim.uid});
        log_line(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                          ": not in the destination; copying it again");
      }
    }
  }

  void ensure_folder() {
    switch (ports.destination.ensure_folder(route.target_folder, route.create_folder)) {
      case MailDestination::Folder::kCreated:
        log_line(spdlog::level::info, "created folder " + route.target_folder);
        break;
      case MailDestination::Folder::kExists:
        break;
      case MailDestination::Folder::kMissing:
        throw SyncStop(
            SyncOutcome::kFolderMissing,
            "folder '" + route.target_folder +
                "' does not exist in the destination and create_folder is false; create it or "
                "set create_folder to true");
    }
  }

  // ---- the batches ------------------------------------------------------------------------

  // A batch fetched and claimed (Postgres, then the mirror): ready to APPEND.
  struct Prepared {
    std::vector<FetchedMessage> messages;
    std::vector<const FetchedMessage*> appending;  // claimed here and in the mirror
    std::vector<Copied> copied;                    // another writer (the old Lambda) copied them
    std::vector<Failure> failures;                 // another writer holds the mirror's claim
    std::set<uint32_t> handled;                    // skipped: copied before
    int skipped = 0;
    std::vector<std::string> would_copy;  // dry run
    PhaseClock phases;
  };

  // Copies the plan's batches. Pipelined: while batch b is appended and finalized here, batch
  // b + 1 is fetched and claimed on a second thread (the source, the mirror's claim lanes, the
  // store under its lock), so the claims' round trips hide behind the APPEND. Returns true when
  // it stopped early (cancel).
  bool copy(uint32_t uidvalidity, const std::vector<PlannedBatch>& plan, bool dedupe,
            WatermarkTracker& tracker, size_t total_messages) {
    int64_t total_bytes = 0;
    for (const auto& batch : plan) total_bytes += static_cast<int64_t>(batch.bytes);
    ProgressMeter progress(static_cast<int64_t>(total_messages), total_bytes, Steady::now());
    const BatchLimits limits{options.batch_messages, options.batch_bytes};
    std::future<std::unique_ptr<Prepared>> next;
    // A batch prepared ahead that will not be appended (the run failed or stops): its claims are
    // given back.
    auto settle_next = [&] {
      if (!next.valid()) return;
      try {
        abandon(uidvalidity, *next.get());
      } catch (const std::exception& e) {
        log_line(spdlog::level::warn,
                 std::string("the next batch, prepared meanwhile, failed too: ") + e.what() +
                     " (its claims stay PENDING and the next run reconciles them)");
      }
    };
    for (size_t b = 0; b < plan.size(); ++b) {
      std::unique_ptr<Prepared> current =
          next.valid() ? next.get() : prepare(uidvalidity, plan[b].uids, dedupe);
      if (b + 1 < plan.size() && may_overlap(plan[b], plan[b + 1], limits))
        next = std::async(std::launch::async, [&, b, context = log::context()] {
          const log::ContextScope scope(context);
          return prepare(uidvalidity, plan[b + 1].uids, dedupe);
        });
      stats.fetched += static_cast<int>(current->messages.size());
      stats.skipped += current->skipped;
      report.would_copy.insert(report.would_copy.end(), current->would_copy.begin(),
                               current->would_copy.end());
      std::set<uint32_t> done;
      try {
        done = commit(uidvalidity, *current);
      } catch (...) {
        settle_next();
        throw;
      }
      for (const uint32_t uid : done) tracker.handled(uid);
      progress.add(static_cast<int64_t>(plan[b].uids.size()), static_cast<int64_t>(plan[b].bytes));
      if (b + 1 < plan.size() && !options.dry_run) show_progress(progress);
      if (const uint32_t mark = tracker.mark(); mark > 0) set_watermark(uidvalidity, mark);
      current->phases.mark("watermark");
      log_line(spdlog::level::debug, "batch of " + std::to_string(plan[b].uids.size()) + " (" +
                                         std::to_string(plan[b].bytes) +
                                         " bytes): " + current->phases.text);
      if (cancel.load()) {
        settle_next();  // stopped with a batch claimed but not appended
        return true;
      }
    }
    settle_next();
    return false;
  }

  // Progress of a run with more to do: in the database (for `mailsync status`) after the first
  // batch and every 5 s, in the log every 10 s.
  void show_progress(ProgressMeter& progress) {
    const auto now = Steady::now();
    const ProgressMeter::Due due = progress.due(now);
    if (!due.write) return;
    const Progress at = progress.at(job_id, now);
    db([&](SyncStore& store) { store.set_progress(key, at); });
    progress_written = true;
    if (due.log)
      log::event(spdlog::level::info, ProgressMeter::line(at),
                 {{"messages_done", at.messages_done},
                  {"messages_total", at.messages_total},
                  {"bytes_done", at.bytes_done},
                  {"bytes_total", at.bytes_total},
                  {"rate_per_s", static_cast<int64_t>(at.rate_per_s)},
                  {"eta_seconds", at.eta_seconds}});
  }

  // Fetch and claim one batch. Runs on a second thread while the main thread appends the batch
  // before, so it touches only the source, the mirror's claim() and (locked) the store.
  std::unique_ptr<Prepared> prepare(uint32_t uidvalidity, const std::vector<uint32_t>& uids,
                                    bool dedupe) {
    auto p = std::make_unique<Prepared>();
    p->messages = ports.source.fetch(uids);
    p->phases.mark("fetch");

    std::vector<const FetchedMessage*> to_copy;
    if (dedupe) {
      std::vector<uint64_t> ids;
      for (const auto& m : p->messages)
        if (m.gm_msgid) ids.push_back(*m.gm_msgid);
      db([&](SyncStore& store) {
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
    if (options.dry_run) {
      for (const FetchedMessage* m : to_copy)
        p->would_copy.push_back("UID " + std::to_string(m->uid) + " " +
                                std::to_string(m->bytes.size()) + " bytes " +
                                m->message_id.value_or("(no Message-ID)"));
      return p;
    }

    std::vector<SyncStore::ClaimRequest> requests;
    for (const FetchedMessage* m : to_copy)
      requests.push_back(
          {m->uid, m->message_id, m->sha256_hex, static_cast<int64_t>(m->bytes.size())});
    const auto claims =
        db([&](SyncStore& store) { return store.claim(key, uidvalidity, requests, job_id); });
    p->phases.mark("claim");
    std::vector<const FetchedMessage*> claimed;
    std::vector<MirrorClaim> mirror_claims;
    for (const FetchedMessage* m : to_copy) {
      const auto& state = claims.at(m->uid);
      if (state.kind == ClaimState::Kind::kDone) {
        ++p->skipped;
        p->handled.insert(m->uid);
      } else if (state.kind == ClaimState::Kind::kClaimed) {
        claimed.push_back(m);
        mirror_claims.push_back({m->uid, m->message_id, m->sha256_hex});
      }
      // kPending: claimed by a run in flight elsewhere (run-once beside a worker); left alone, and
      // the watermark waits for it.
    }
    const auto refused = ports.mirror.claim(uidvalidity, mirror_claims);
    p->phases.mark("mirror claims");
    for (const FetchedMessage* m : claimed) {
      if (const auto other = refused.find(m->uid); other != refused.end()) {
        if (other->second == "DONE") {  // another writer (the old Lambda) copied it
          p->copied.push_back({m->uid, std::nullopt, std::nullopt, m->message_id, m->sha256_hex,
                               static_cast<int64_t>(m->bytes.size()), std::nullopt, m->gm_msgid});
          ++p->skipped;
        } else {
          p->failures.push_back({m->uid, "claimed_elsewhere",
                                 "another writer holds the DynamoDB claim (" + other->second + ")",
                                 false, options.now() + kClaimedElsewhereWait, m->message_id,
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
    for (const FetchedMessage* m : p.appending) uids.push_back(m->uid);
    if (uids.empty()) return;
    db([&](SyncStore& store) { store.release(key, uidvalidity, uids); });
    ports.mirror.release(uidvalidity, uids);
  }

  // APPEND -> finalize (Postgres, then the mirror). Returns the UIDs now handled (DONE, skipped
  // or recorded as failures); UIDs left PENDING are not.
  std::set<uint32_t> commit(uint32_t uidvalidity, Prepared& p) {
    std::set<uint32_t> handled = p.handled;
    if (options.dry_run) return handled;
    std::vector<Copied>& copied = p.copied;
    std::vector<Failure>& failures = p.failures;
    p.phases.last = Steady::now();
    std::vector<imap::AppendMessage> messages;
    for (const FetchedMessage* m : p.appending) {
      imap::AppendMessage message{m->bytes, {}, m->internaldate};
      if (route.mark_seen) message.flags.push_back("\\Seen");
      messages.push_back(message);
    }
    std::vector<imap::AppendOutcome> outcomes;
    try {
      outcomes = ports.destination.append(route.target_folder, messages);
    } catch (const std::exception&) {
      // The connection broke mid-batch: what was appended is unknown. The claims stay PENDING and
      // the next run reconciles them before appending anything again.
      connections_reusable = false;
      db([&](SyncStore& store) {
        store.finalize(key, uidvalidity, copied);
        record_failures(store, uidvalidity, failures);
      });
      throw;
    }
    p.phases.mark("append");
    std::vector<uint32_t> released;
    std::vector<MirrorClaim> mirror_done;
    for (size_t i = 0; i < p.appending.size(); ++i) {
      const FetchedMessage& m = *p.appending[i];
      if (const auto* ok = std::get_if<imap::AppendResult>(&outcomes[i])) {
        std::optional<TimePoint> date;
        if (m.internaldate)
          if (const auto parsed = mail::parse_internaldate(*m.internaldate)) date = parsed->instant;
        copied.push_back({m.uid, ok->uidvalidity, ok->uid, m.message_id, m.sha256_hex,
                          static_cast<int64_t>(m.bytes.size()), date, m.gm_msgid});
        mirror_done.push_back({m.uid, m.message_id, m.sha256_hex});
        ++stats.appended;
        stats.bytes += static_cast<int64_t>(m.bytes.size());
      } else {
        const auto& error = std::get<imap::ImapError>(outcomes[i]);
        const imap::ErrorClass judged = imap::classify(error);
        const bool permanent = judged.kind == imap::ErrorClass::Kind::kPermanent;
        failures.push_back(
            {m.uid, judged.reason, error.what(), permanent,
             permanent ? std::nullopt : std::optional(options.now() + judged.retry_after),
             m.message_id, static_cast<int64_t>(m.bytes.size())});
        released.push_back(m.uid);
        last_message_error = error.what();
        log_line(permanent ? spdlog::level::err : spdlog::level::warn,
                 "UID " + std::to_string(m.uid) + " not copied (" +
                     (permanent ? "permanent" : "will retry") + "): " + error.what());
      }
    }
    // Postgres first (the truth), then the mirror.
    const std::map<uint32_t, int> retries = db([&](SyncStore& store) {
      store.finalize(key, uidvalidity, copied);
      store.release(key, uidvalidity, released);
      return record_failures(store, uidvalidity, failures);
    });
    p.phases.mark("finalize");
    std::vector<MirrorFailure> mirror_failed;
    for (const auto& f : failures)
      mirror_failed.push_back({f.uid, f.error, retries.contains(f.uid) ? retries.at(f.uid) : 0});
    ports.mirror.release(uidvalidity, released);
    ports.mirror.record(uidvalidity, mirror_done, mirror_failed);
    p.phases.mark("mirror done");
    stats.failed += static_cast<int>(failures.size());
    failed_messages += static_cast<int>(failures.size());
    for (const auto& f : failures)
      metrics::of(metrics::get().message_failures, "reason", f.reason).Increment();
    publish_counts();
    for (const auto& c : copied) handled.insert(c.uid);
    for (const auto& f : failures) handled.insert(f.uid);
    return handled;
  }

  // The failures with their next retry (one rule: next_message_retry_at, from the retry count so
  // far and the earliest time the server or the run asked for, carried in next_retry_at).
  std::map<uint32_t, int> record_failures(SyncStore& store, uint32_t uidvalidity,
                                          std::vector<Failure>& failures) {
    if (failures.empty()) return {};
    std::vector<uint32_t> uids;
    for (const auto& f : failures) uids.push_back(f.uid);
    const std::map<uint32_t, int> before = store.failure_retry_counts(key, uidvalidity, uids);
    const TimePoint now = options.now();
    for (auto& f : failures) {
      if (f.permanent) continue;
      const auto seen = before.find(f.uid);
      const int retry_count = seen == before.end() ? 0 : seen->second + 1;
      const auto hint = std::chrono::duration_cast<std::chrono::milliseconds>(
          f.next_retry_at.value_or(now) - now);
      f.next_retry_at = next_message_retry_at(now, retry_count, hint);
    }
    return store.record_failures(key, uidvalidity, failures);
  }

  void set_watermark(uint32_t uidvalidity, uint32_t last_uid) {
    if (options.dry_run) return;
    if (stored_mark && stored_mark->uidvalidity == uidvalidity && stored_mark->last_uid >= last_uid)
      return;
    stored_mark = Watermark{uidvalidity, last_uid};
    db([&](SyncStore& store) { store.set_watermark(key, {uidvalidity, last_uid}); });
    ports.mirror.set_watermark({uidvalidity, last_uid});
    report.watermark = last_uid;
  }

  // ---- counts -------------------------------------------------------------------------------

  // Adds what the run did since the last call to the process's counters (mailsync/metrics.hpp).
  void publish_counts() {
    auto& m = metrics::get();
    m.messages_appended.Increment(stats.appended - published.appended);
    m.bytes_appended.Increment(static_cast<double>(stats.bytes - published.bytes));
    m.messages_skipped.Increment(stats.skipped - published.skipped);
    published = stats;
  }

  // The counts of the run so far, for the summary line.
  nlohmann::ordered_json counts(std::string_view outcome) const {
    return {
        {"outcome", outcome},
        {"fetched", stats.fetched},
        {"appended", stats.appended},
        {"skipped", stats.skipped},
        {"failed", stats.failed},
        {"bytes", stats.bytes},
        {"duration_ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started).count()}};
  }

  // ---- how a run that did not succeed ends --------------------------------------------------

  // The route stops until a person renews its credentials (`mailsync resume` clears it).
  SyncReport stop_for_auth(const std::string& why) {
    ports.store.set_auth_required(key, why);
    metrics::get().routes_set_auth_required.Increment();
    return ended(SyncOutcome::kAuthRequired, why);
  }

  // `label` is the route's last outcome in the store and the log.
  SyncReport fail(SyncOutcome outcome, const std::string& label, const std::string& error,
                  std::optional<TimePoint> retry_at = std::nullopt) {
    try {
      if (!options.dry_run) ports.store.set_outcome(key, label, error, false);
    } catch (const std::exception&) {
      // the outcome is also in the job's attempt; the store may be what failed
    }
    publish_counts();
    log::event(spdlog::level::warn, "route_sync " + label + ": " + error, counts(label));
    return ended(outcome, error, retry_at);
  }

  SyncReport guarded() {
    try {
      return execute();
    } catch (const MirrorUnavailable& e) {
      metrics::get().gate_failures.Increment();
      return fail(SyncOutcome::kGateClosed, "gate_unavailable", e.what());
    } catch (const oauth::AuthRequired& e) {
      log::event(spdlog::level::err, std::string("route_sync auth_required: ") + e.what(),
                 counts("auth_required"));
      return stop_for_auth(e.what());
    } catch (const SyncStop& e) {
      if (e.outcome() == SyncOutcome::kAuthRequired) return stop_for_auth(e.what());
      return fail(e.outcome(), "failed", e.what());
    } catch (const oauth::TokenUnavailable& e) {
      return fail(SyncOutcome::kFailed, "failed", e.what());
    } catch (const postgres::DatabaseUnavailable&) {
      connections_reusable = false;
      throw;  // the worker's loop handles database outages
    } catch (const std::exception& e) {
      connections_reusable = false;
      const imap::ErrorClass judged = imap::classify(std::current_exception());
      if (judged.kind == imap::ErrorClass::Kind::kThrottled && judged.retry_after.count() > 0)
        return fail(SyncOutcome::kThrottled, "retry", e.what(), options.now() + judged.retry_after);
      return fail(SyncOutcome::kFailed, "failed", e.what());
    }
  }

  // Connections go back to their pools only when healthy; the progress row goes.
  void finish() {
    if (progress_written) {
      try {
        ports.store.clear_progress(key);
      } catch (const std::exception&) {
        // the row stops showing by itself after two minutes (sql/0004)
      }
    }
    try {
      ports.destination.close(connections_reusable);
      ports.source.close(connections_reusable);
    } catch (const std::exception& e) {
      log_line(spdlog::level::warn, std::string("closing the connections: ") + e.what());
    }
  }
};

SyncReport RouteSync::run(int64_t job_id, const std::atomic<bool>& cancel) {
  const std::string key = route_.key();
  // Inside a worker the job's context is in place already; run-once gets a run id here.
  const log::ContextScope log_context(
      {log::context().run_id.empty() ? log::new_run_id() : "", job_id, key});
  Run run{route_, ports_, options_, job_id, cancel};
  struct Finally {
    Run& run;
    ~Finally() { run.finish(); }
  } finally{run};
  return run.guarded();
}

}  // namespace mailsync::sync
