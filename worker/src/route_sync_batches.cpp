// The batches of a route_sync run: prepare (fetch, dedupe, claim in Postgres and the mirror) on a
// second thread while the batch before is committed (APPEND, finalize, mirror) on the run's own;
// failures recorded with their next retry.

#include <future>

#include "mailsync/log.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/metrics.hpp"
#include "mailsync/sync/message_retry.hpp"
#include "mailsync/util/pause_point.hpp"
#include "mailsync/util/strings.hpp"
#include "route_sync_run.hpp"
#include "time_format.hpp"

namespace mailsync::sync {

namespace {

// A throttling answer that names no time (Gmail's [THROTTLED]): the account waits this long.
constexpr std::chrono::milliseconds kDefaultThrottle{std::chrono::minutes(1)};
// The claimed_elsewhere wait: another writer (the old Lambda) is copying the message.
constexpr std::chrono::minutes kClaimedElsewhereWait{5};
// A message the source would not serve (Gmail's "Some messages could not be FETCHed", BODY[] NIL)
// is tried again on the per-message schedule this often, then recorded as permanent: Gmail says
// it every time for such a message, but a passing fault on its side says the same.
constexpr int kUnservedRetries = 5;

// The instant of the source's INTERNALDATE, when APPEND can take it (commit() appends without a
// date it cannot): recorded with the claim and with the copy.
std::optional<TimePoint> append_date(const FetchedMessage& m) {
  if (!m.internaldate) return std::nullopt;
  const auto parsed = mail::parse_internaldate(*m.internaldate);
  return parsed ? std::optional(parsed->instant) : std::nullopt;
}

}  // namespace

// Copies the plan's batches. Pipelined: while batch b is appended and finalized here, batch
// b + 1 is fetched and claimed on a second thread (the source, the mirror's claim lanes, the
// store under its lock), so the claims' round trips hide behind the APPEND. Returns true when
// it stopped early (cancel).
bool RouteSync::Run::copy(uint32_t uidvalidity, const std::vector<PlannedBatch>& plan, bool dedupe,
                          WatermarkTracker& tracker) {
  int64_t total_messages = 0, total_bytes = 0;
  for (const auto& batch : plan) {
    total_messages += static_cast<int64_t>(batch.uids.size());
    total_bytes += static_cast<int64_t>(batch.bytes);
  }
  ProgressMeter progress(total_messages, total_bytes, Steady::now());
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
      if (folder_ready.valid()) {
        try {
          folder_ready.get();  // the folder exists before the first APPEND
        } catch (...) {
          try {
            abandon(uidvalidity, *current);  // claimed, never sent: given back
          } catch (const std::exception& e) {
            log_line(spdlog::level::warn, std::string("giving back the first batch failed too: ") +
                                              e.what() + " (its claims say never sent)");
          }
          throw;
        }
      }
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
    if (stop_after_batch) {  // throttled, or the connection ended: what it answered is recorded
      settle_next();
      std::rethrow_exception(stop_after_batch);
    }
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
void RouteSync::Run::show_progress(ProgressMeter& progress) {
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
                {"eta_seconds", at.eta_seconds ? nlohmann::json(*at.eta_seconds) : nullptr}});
}

// Fetch and claim one batch. Runs on a second thread while the main thread appends the batch
// before, so it touches only the source, the mirror's claim() and (locked) the store.
std::unique_ptr<RouteSync::Run::Prepared> RouteSync::Run::prepare(uint32_t uidvalidity,
                                                                  const std::vector<uint32_t>& uids,
                                                                  bool dedupe) {
  auto p = std::make_unique<Prepared>();
  p->messages = ports.source.fetch(uids);
  p->phases.mark("fetch");
  // What the source would not serve is that message's failure; the rest go on.
  std::erase_if(p->messages, [&](const FetchedMessage& m) {
    if (!m.unserved) return false;
    p->failures.push_back({m.uid, "fetch_failed", *m.unserved, false, options.now(), std::nullopt,
                           std::nullopt, kUnservedRetries});
    log_line(spdlog::level::warn, "UID " + std::to_string(m.uid) +
                                      " could not be fetched from the source: " + *m.unserved);
    return true;
  });

  std::vector<const FetchedMessage*> to_copy;
  // X-GM-MSGID names a Gmail message for good: one already copied for the route comes back under
  // a new UID when it is archived and moved back to the INBOX (or labelled INBOX again), and is
  // not copied twice, in every mode (invariant 5a; one indexed query per batch). Without it,
  // Message-ID and SHA-256 decide, only where the start point asks for dedupe (a UIDVALIDITY
  // change, a window): two different messages may share both.
  std::vector<uint64_t> ids;
  for (const auto& m : p->messages)
    if (m.gm_msgid) ids.push_back(*m.gm_msgid);
  if (dedupe || !ids.empty()) {
    db([&](SyncStore& store) {
      const auto copied_ids = ids.empty() ? std::set<uint64_t>{} : store.copied_gm_msgids(key, ids);
      for (const auto& m : p->messages) {
        const bool copied = m.gm_msgid
                                ? copied_ids.contains(*m.gm_msgid)
                                : dedupe && store.copied_message(key, m.message_id, m.sha256_hex);
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
                              util::safe_text(m->message_id.value_or("(no Message-ID)")));
    return p;
  }

  std::vector<SyncStore::ClaimRequest> requests;
  requests.reserve(to_copy.size());
  for (const FetchedMessage* m : to_copy) {
    // The date the APPEND will name: crash recovery recognises the copy by it.
    requests.push_back({m->uid, m->message_id, m->sha256_hex, static_cast<int64_t>(m->bytes.size()),
                        m->gm_msgid, append_date(*m)});
  }
  const auto claims =
      db([&](SyncStore& store) { return store.claim(key, uidvalidity, requests, fence); });
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
        p->give_back.push_back(m->uid);
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
void RouteSync::Run::abandon(uint32_t uidvalidity, const Prepared& p) {
  std::vector<uint32_t> uids;
  for (const FetchedMessage* m : p.appending) uids.push_back(m->uid);
  std::vector<uint32_t> ours = uids;
  ours.insert(ours.end(), p.give_back.begin(), p.give_back.end());
  if (ours.empty()) return;
  db([&](SyncStore& store) { store.release(fence, key, uidvalidity, ours); });
  if (!uids.empty()) ports.mirror.release(uidvalidity, uids);
}

// APPEND -> finalize (Postgres, then the mirror). Returns the UIDs now handled (DONE, skipped
// or recorded as failures); UIDs left PENDING are not.
std::set<uint32_t> RouteSync::Run::commit(uint32_t uidvalidity, Prepared& p) {
  std::set<uint32_t> handled = p.handled;
  if (options.dry_run) return handled;
  std::vector<Copied>& copied = p.copied;
  std::vector<Failure>& failures = p.failures;
  p.phases.last = Steady::now();
  std::vector<imap::AppendMessage> messages;
  for (const FetchedMessage* m : p.appending) {
    imap::AppendMessage message{m->bytes, {}, m->internaldate};
    // A date the source sent that APPEND cannot take: the message goes without it (the server
    // dates it now) rather than not at all; its bytes are unchanged.
    if (message.internaldate && !append_date(*m)) {
      log_line(spdlog::level::warn, "UID " + std::to_string(m->uid) +
                                        ": the source's INTERNALDATE '" +
                                        util::safe_text(*message.internaldate) +
                                        "' is not valid for APPEND; appended without it");
      message.internaldate.reset();
    }
    if (route.mark_seen) message.flags.emplace_back("\\Seen");
    messages.push_back(message);
  }
  // The folder's UIDNEXT before these APPENDs, with their claims: if the run ends before their
  // answers are recorded, crash recovery looks only at what arrived since (invariant 3). Recorded
  // also without a mark: until then the claims say "never sent", and recovery skips them.
  if (!p.appending.empty()) {
    const auto mark = ports.destination.folder_mark(route.target_folder);
    std::vector<uint32_t> uids;
    for (const FetchedMessage* m : p.appending) uids.push_back(m->uid);
    db([&](SyncStore& store) {
      store.record_destination_mark(fence, key, uidvalidity, uids,
                                    mark ? std::optional(mark->uidvalidity) : std::nullopt,
                                    mark ? std::optional(mark->uidnext) : std::nullopt);
    });
    p.phases.mark("mark");
  }
  std::vector<imap::AppendOutcome> outcomes;
  size_t sent_whole = messages.size();  // commands that went out whole
  std::exception_ptr interruption;      // the BYE or broken connection that cut the answers off
  bool server_stopped = false;          // ... right after a refusal: nothing after it was stored
  if (!messages.empty()) util::pause_point("before_append");  // tests freeze a worker here
  try {
    outcomes = ports.destination.append(route.target_folder, messages, lease.fresh);
  } catch (imap::AppendInterrupted& e) {
    // What was answered before the connection ended is known and kept (Outlook: "BAD Request is
    // throttled ..." then "* BYE Connection closed. 14" in the middle of a pipelined batch).
    connections_reusable = false;
    server_stopped = e.stopped_after_refusal();
    outcomes = std::move(e.results);
    sent_whole = e.sent;
    interruption = e.cause;
  } catch (const std::exception& e) {
    // What this batch appended is unknown: the connection broke mid-batch, or the lease went stale
    // while a command was on the wire (SendStopped: that command was cut off, so not stored). The
    // claims stay PENDING; the next run, or the attempt that takes over, reconciles them before
    // appending anything again.
    connections_reusable = false;
    db([&](SyncStore& store) {
      store.finalize(fence, key, uidvalidity, copied);
      record_failures(store, uidvalidity, failures);
    });
    if (dynamic_cast<const imap::SendStopped*>(&e) != nullptr)
      throw LeaseLost(std::string("the job's lease was not renewed in time: ") + e.what());
    throw;
  }
  p.phases.mark("append");
  // Fewer answers than messages: the lease went stale mid-batch and the rest were never sent, or
  // the connection ended. Those sent whole and unanswered may be stored, unless the server
  // stopped right after refusing one: they stay PENDING for a later run's reconcile. The rest
  // were never sent and are given back.
  const size_t answered = outcomes.size();
  std::vector<uint32_t> released;
  std::vector<MirrorClaim> mirror_done;
  for (size_t i = answered; i < p.appending.size(); ++i)
    if (!interruption || i >= sent_whole || server_stopped) released.push_back(p.appending[i]->uid);
  // Throttling is no message's fault: the message is given back (the watermark waits for it), and
  // the whole account waits as long as the server asked.
  std::optional<TimePoint> throttled_until;
  std::string throttle_words;
  for (size_t i = 0; i < answered; ++i) {
    const FetchedMessage& m = *p.appending[i];
    if (const auto* ok = std::get_if<imap::AppendResult>(&outcomes[i])) {
      copied.push_back({m.uid, ok->uidvalidity, ok->uid, m.message_id, m.sha256_hex,
                        static_cast<int64_t>(m.bytes.size()), append_date(m), m.gm_msgid});
      mirror_done.push_back({m.uid, m.message_id, m.sha256_hex});
      if (const auto arrived = append_date(m))
        metrics::get().delivery_latency.Observe(
            std::chrono::duration<double>(options.now() - *arrived).count());
      ++stats.appended;
      stats.bytes += static_cast<int64_t>(m.bytes.size());
    } else {
      const auto& error = std::get<imap::ImapError>(outcomes[i]);
      const imap::ErrorClass judged = imap::classify(error);
      if (judged.kind == imap::ErrorClass::Kind::kThrottled) {
        released.push_back(m.uid);
        const TimePoint until = options.now() + std::max(judged.retry_after, kDefaultThrottle);
        if (!throttled_until || until > *throttled_until) {
          throttled_until = until;
          throttle_words = util::safe_text(error.what());
        }
        log_line(spdlog::level::warn, "UID " + std::to_string(m.uid) +
                                          " given back, the destination is throttling: " +
                                          util::safe_text(error.what()));
        continue;
      }
      const bool permanent = judged.kind == imap::ErrorClass::Kind::kPermanent;
      failures.push_back(
          {m.uid, judged.reason, error.what(), permanent,
           permanent ? std::nullopt : std::optional(options.now() + judged.retry_after),
           m.message_id, static_cast<int64_t>(m.bytes.size()), judged.max_retries});
      released.push_back(m.uid);
      last_message_error = error.what();
      log_line(permanent ? spdlog::level::err : spdlog::level::warn,
               "UID " + std::to_string(m.uid) + " not copied (" +
                   (permanent ? "permanent" : "will retry") + "): " + error.what());
    }
  }
  // Postgres first (the truth), then the mirror.
  const std::map<uint32_t, int> retries = db([&](SyncStore& store) {
    store.finalize(fence, key, uidvalidity, copied);
    std::vector<uint32_t> ours = released;
    ours.insert(ours.end(), p.give_back.begin(), p.give_back.end());
    store.release(fence, key, uidvalidity, ours);
    return record_failures(store, uidvalidity, failures);
  });
  p.phases.mark("finalize");
  std::vector<MirrorFailure> mirror_failed;
  mirror_failed.reserve(failures.size());
  for (const auto& f : failures)
    mirror_failed.push_back({f.uid, f.error, retries.contains(f.uid) ? retries.at(f.uid) : 0});
  ports.mirror.release(uidvalidity, released);
  ports.mirror.record(uidvalidity, mirror_done, mirror_failed);
  p.phases.mark("mirror done");
  stats.failed += static_cast<int>(failures.size());
  failed_messages += static_cast<int>(failures.size());
  if (!failures.empty()) last_message_error = failures.back().error;
  for (const auto& f : failures)
    metrics::of(metrics::get().message_failures, "reason", f.reason).Increment();
  publish_counts();
  // The run stops after this batch's watermark is written (copy()).
  if (throttled_until) {
    db([&](SyncStore& store) {
      store.set_account_backoff(destination_account, {*throttled_until, throttle_words});
    });
    stop_after_batch = std::make_exception_ptr(AccountThrottled(
        "the Outlook mailbox " + route.outlook_email + " asked every client to back off until " +
            iso8601(*throttled_until) + ": " + throttle_words,
        *throttled_until));
  } else if (interruption) {
    stop_after_batch = interruption;
  }
  if (!interruption && answered < p.appending.size())
    throw LeaseLost("the job's lease was not renewed in time: " +
                    std::to_string(p.appending.size() - answered) + " of " +
                    std::to_string(p.appending.size()) +
                    " messages of the batch not sent (given back); stopped");
  for (const auto& c : copied) handled.insert(c.uid);
  for (const auto& f : failures) handled.insert(f.uid);
  return handled;
}

// The failures with their next retry (one rule: next_message_retry_at, from the retry count so
// far and the earliest time the server or the run asked for, carried in next_retry_at).
std::map<uint32_t, int> RouteSync::Run::record_failures(SyncStore& store, uint32_t uidvalidity,
                                                        std::vector<Failure>& failures) {
  if (failures.empty()) return {};
  std::vector<uint32_t> uids;
  uids.reserve(failures.size());
  for (const auto& f : failures) uids.push_back(f.uid);
  const std::map<uint32_t, int> before = store.failure_retry_counts(key, uidvalidity, uids);
  const TimePoint now = options.now();
  for (auto& f : failures) {
    if (f.permanent) continue;
    const auto seen = before.find(f.uid);
    const int retry_count = seen == before.end() ? 0 : seen->second + 1;
    if (f.max_retries && retry_count >= *f.max_retries) {  // "maybe never" became "never"
      f.permanent = true;
      f.next_retry_at.reset();
      f.error += " (permanent after " + std::to_string(retry_count) + " retries)";
      continue;
    }
    const auto hint =
        std::chrono::duration_cast<std::chrono::milliseconds>(f.next_retry_at.value_or(now) - now);
    f.next_retry_at = next_message_retry_at(now, retry_count, hint);
  }
  return store.record_failures(fence, key, uidvalidity, failures);
}

}  // namespace mailsync::sync
