// The orchestrator of one route_sync run, top-down: gate, source, start point, reconcile, folder,
// plan, then the batches (route_sync_batches.cpp); the watermark after each batch (invariant 4);
// the outcome.

#include <algorithm>

#include "mailsync/log.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/postgres/errors.hpp"
#include "route_sync_run.hpp"
#include "time_format.hpp"

namespace mailsync::sync {

void PhaseClock::mark(const char* phase) {
  const auto now = Steady::now();
  text +=
      std::string(text.empty() ? "" : ", ") + phase + " " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count()) +
      " ms";
  last = now;
}

void log_line(spdlog::level::level_enum level, const std::string& text) {
  spdlog::log(level, "route_sync: {}", text);
}

RouteSync::RouteSync(const config::Route& route, SyncPorts ports, SyncOptions options)
    : route_(route), ports_(ports), options_(std::move(options)) {}

SyncReport RouteSync::run(const RunLease& lease, const std::atomic<bool>& cancel) {
  Run run{route_, ports_, options_, lease, cancel};
  // Inside a worker the job's context is in place already; run-once gets a run id here.
  const log::ContextScope log_context(
      {log::context().run_id.empty() ? log::new_run_id() : "", lease.fence.job_id, run.key});
  struct Finally {
    Run& run;
    ~Finally() { run.finish(); }
  } finally{run};
  return run.guarded();
}

SyncReport RouteSync::Run::execute() {
  ports.store.ensure_route(route);
  if (ports.store.auth_required(key))
    return ended(SyncOutcome::kAuthRequired,
                 "fix the credentials, then `mailsync resume " + route.gmail_email + "`");
  // The destination asked every client to back off (another route was told): no connection at
  // all until then, or each route in turn would be throttled again and keep the mailbox blocked.
  if (const auto backoff = ports.store.account_backoff(destination_account, options.now()))
    return fail(SyncOutcome::kThrottled, "retry",
                "the Outlook mailbox " + route.outlook_email + " asked to back off until " +
                    iso8601(backoff->not_before) + ": " + backoff->reason,
                backoff->not_before);
  job_phases.mark("state");
  ports.mirror.check_gate();  // no IMAP work while DynamoDB is unreachable (invariant 6)
  job_phases.mark("gate");
  const imap::MailboxInfo inbox = ports.source.open_inbox();  // read-only (invariant 1)
  job_phases.mark("examine");

  const StartPoint start = where_to_start(inbox);
  const std::vector<uint32_t> candidates = find_candidates(start, inbox.uidvalidity);
  job_phases.mark("plan");
  if (!options.dry_run) reconcile();
  // Copied already, by a run whose watermark stayed behind them (claims in doubt held it, or the
  // run was killed): not fetched again. Else a first import killed twice downloaded a third of
  // the mailbox again, only to find each message DONE (bench/sync/import.sh).
  std::set<uint32_t> copied;
  if (!candidates.empty())
    copied = ports.store.copied_uids_above(
        key, inbox.uidvalidity,
        stored_mark && stored_mark->uidvalidity == inbox.uidvalidity ? stored_mark->last_uid : 0);
  std::vector<uint32_t> wanted;
  std::copy_if(candidates.begin(), candidates.end(), std::back_inserter(wanted),
               [&](uint32_t uid) { return !copied.contains(uid); });
  if (!options.dry_run && !wanted.empty())
    folder_ready = std::async(std::launch::async, [this, context = log::context()] {
      const log::ContextScope scope(context);
      ensure_folder();
    });
  job_phases.mark("reconcile");

  const std::map<uint32_t, uint64_t> sizes = ports.source.sizes(wanted);
  WatermarkTracker tracker(start.floor, candidates,
                           ports.store.failed_uids(key, inbox.uidvalidity));
  for (const uint32_t uid : copied) tracker.handled(uid);
  stats.skipped += static_cast<int>(copied.size());  // counted as when a claim finds them DONE
  std::vector<uint32_t> present;
  for (const uint32_t uid : wanted) {
    if (sizes.contains(uid))
      present.push_back(uid);
    else
      tracker.handled(uid);  // expunged since the search: nothing to copy
  }
  const std::vector<PlannedBatch> plan =
      cut_batches(present, sizes, {options.batch_messages, options.batch_bytes});
  const bool stopped = copy(inbox.uidvalidity, plan, start.dedupe, tracker);
  if (folder_ready.valid())
    folder_ready.get();  // nothing was left to copy: its answer still counts
  // Also when nothing was copied (no candidates, or all gone since the search): a window start
  // passes what existed then, a new route records its start.
  if (const uint32_t mark = tracker.mark(); mark > 0 || !start.watermark)
    set_watermark(inbox.uidvalidity, mark);
  if (stopped) return ended(SyncOutcome::kStopped, "stopped between batches (shutdown)");
  if (in_doubt > 0) {
    const auto grace = std::chrono::duration_cast<std::chrono::seconds>(options.reconcile_grace);
    return fail(SyncOutcome::kInDoubt, "retry",
                std::to_string(in_doubt) + " claims of an attempt that lost its lease less than " +
                    std::to_string(grace.count()) +
                    " s ago (it may still have an APPEND on the wire) were left alone; the rest "
                    "was copied, and the run is retried when the grace is over",
                options.now() + options.reconcile_grace + std::chrono::seconds(1));
  }

  if (!options.dry_run)
    ports.store.set_outcome(
        key, "succeeded",
        failed_messages > 0
            ? std::to_string(failed_messages) + " messages not copied, last: " + last_message_error
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

SyncReport RouteSync::Run::ended(SyncOutcome outcome, const std::string& error,
                                 std::optional<TimePoint> retry_at) {
  report.outcome = outcome;
  report.result = to_job_result(outcome, error, retry_at.value_or(options.now()), stats);
  return std::move(report);
}

StartPoint RouteSync::Run::where_to_start(const imap::MailboxInfo& inbox) {
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

std::vector<uint32_t> RouteSync::Run::find_candidates(const StartPoint& start,
                                                      uint32_t uidvalidity) {
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

// Claims left PENDING by a run that is over (crashed, or stopped with its connection broken):
// taken over in one fenced statement (claims of an attempt that may still be appending stay its
// own), then found in the destination before anything is appended again (invariant 3); DONE if
// they arrived, given back if not.
void RouteSync::Run::reconcile() {
  const SyncStore::Adopted adopted = ports.store.adopt_pending(fence, key, options.reconcile_grace);
  in_doubt = adopted.in_doubt;
  const std::vector<PendingClaim>& pending = adopted.claims;
  if (pending.empty()) return;
  const auto began = Steady::now();
  ensure_folder();  // it may have gone since (a person deleted it): then nothing arrived there
  const auto arrivals = ports.destination.find_arrivals(route.target_folder, pending);
  // Recorded together, per source UIDVALIDITY: one finalize and one release in PostgreSQL, one
  // batch of DONE items and one of releases in the mirror, not two statements and two DynamoDB
  // calls per claim (bench/sync: 200 claims of a killed run reconciled in ~0.2 s).
  struct Outcome {
    std::vector<Copied> found;
    std::vector<MirrorClaim> mirrored;
    std::vector<uint32_t> missing;
  };
  std::map<uint32_t, Outcome> by_uidvalidity;
  for (size_t i = 0; i < pending.size(); ++i) {
    const PendingClaim& claim = pending[i];
    Outcome& outcome = by_uidvalidity[claim.uidvalidity];
    if (const auto found = arrivals[i]) {
      outcome.found.push_back({claim.uid, std::nullopt, *found, claim.message_id, claim.sha256_hex,
                               claim.size.value_or(0), std::nullopt, claim.gm_msgid});
      outcome.mirrored.push_back({claim.uid, claim.message_id, claim.sha256_hex});
      log_line(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                        ": already in the destination as UID " +
                                        std::to_string(*found));
    } else {
      outcome.missing.push_back(claim.uid);
      log_line(spdlog::level::info, "reconciled UID " + std::to_string(claim.uid) +
                                        ": not in the destination; copying it again");
    }
  }
  for (const auto& entry : by_uidvalidity) {
    const uint32_t uidvalidity = entry.first;  // not a structured binding: the lambda uses it
    const Outcome& outcome = entry.second;
    db([&](SyncStore& store) {
      if (!outcome.found.empty()) store.finalize(fence, key, uidvalidity, outcome.found);
      if (!outcome.missing.empty()) store.release(fence, key, uidvalidity, outcome.missing);
    });
    if (!outcome.mirrored.empty()) ports.mirror.record(uidvalidity, outcome.mirrored, {});
    if (!outcome.missing.empty()) ports.mirror.release(uidvalidity, outcome.missing);
  }
  size_t found = 0;
  for (const auto& [uidvalidity, outcome] : by_uidvalidity) found += outcome.found.size();
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - began).count();
  log::event(spdlog::level::info,
             "reconciled " + std::to_string(pending.size()) + " claims left PENDING in " +
                 std::to_string(took) + " ms: " + std::to_string(found) +
                 " already in the destination, " + std::to_string(pending.size() - found) +
                 " to copy again",
             {{"reconciled", pending.size()}, {"found", found}, {"reconcile_ms", took}});
}

void RouteSync::Run::ensure_folder() {
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

void RouteSync::Run::set_watermark(uint32_t uidvalidity, uint32_t last_uid) {
  if (options.dry_run) return;
  if (stored_mark && stored_mark->uidvalidity == uidvalidity && stored_mark->last_uid >= last_uid)
    return;
  stored_mark = Watermark{uidvalidity, last_uid};
  db([&](SyncStore& store) { store.set_watermark(fence, key, {uidvalidity, last_uid}); });
  ports.mirror.set_watermark({uidvalidity, last_uid});
  report.watermark = last_uid;
}

// Adds what the run did since the last call to the process's counters (mailsync/metrics.hpp).
void RouteSync::Run::publish_counts() {
  auto& m = metrics::get();
  m.messages_appended.Increment(stats.appended - published.appended);
  m.bytes_appended.Increment(static_cast<double>(stats.bytes - published.bytes));
  m.messages_skipped.Increment(stats.skipped - published.skipped);
  published = stats;
}

// The counts of the run so far, for the summary line.
nlohmann::ordered_json RouteSync::Run::counts(std::string_view outcome) const {
  return {{"outcome", outcome},
          {"fetched", stats.fetched},
          {"appended", stats.appended},
          {"skipped", stats.skipped},
          {"failed", stats.failed},
          {"bytes", stats.bytes},
          {"duration_ms",
           std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started).count()}};
}

// The route stops until a person renews its credentials (`mailsync resume` clears it).
SyncReport RouteSync::Run::stop_for_auth(const std::string& why) {
  ports.store.set_auth_required(key, why);
  metrics::get().routes_set_auth_required.Increment();
  return ended(SyncOutcome::kAuthRequired, why);
}

// `label` is the route's last outcome in the store and the log.
SyncReport RouteSync::Run::fail(SyncOutcome outcome, const std::string& label,
                                const std::string& error, std::optional<TimePoint> retry_at) {
  try {
    if (!options.dry_run) ports.store.set_outcome(key, label, error, false);
  } catch (const std::exception&) {
    // the outcome is also in the job's attempt; the store may be what failed
  }
  publish_counts();
  log::event(spdlog::level::warn, "route_sync " + label + ": " + error, counts(label));
  return ended(outcome, error, retry_at);
}

SyncReport RouteSync::Run::guarded() {
  try {
    return execute();
  } catch (const LeaseLost& e) {
    // Another attempt owns the route now: nothing more is written for this one, not even the
    // route's outcome; the connections may be mid-command.
    connections_reusable = false;
    metrics::get().leases_lost.Increment();
    publish_counts();
    log::event(spdlog::level::warn, std::string("route_sync lease_lost: ") + e.what(),
               counts("lease_lost"));
    return ended(SyncOutcome::kLeaseLost, e.what());
  } catch (const AccountThrottled& e) {
    connections_reusable = false;
    return fail(SyncOutcome::kThrottled, "retry", e.what(), e.until());
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
void RouteSync::Run::finish() {
  if (folder_ready.valid()) folder_ready.wait();  // it uses the destination closed below
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

}  // namespace mailsync::sync
