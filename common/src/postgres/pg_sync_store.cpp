// The PostgreSQL SyncStore. Statements named here, in one place. Each read, and each write that
// needs no fence, is one statement run outside a transaction block (pqxx::nontransaction): one
// round trip instead of three (BEGIN, the statement, COMMIT), for most of a route job's statements.

#include <algorithm>
#include <tuple>

#include "mailsync/sync/sync_store.hpp"
#include "mailsync/util/strings.hpp"
#include "postgres/connection.hpp"
#include "postgres/params.hpp"
#include "postgres/pg_arrays.hpp"
#include "postgres/queue_queries.hpp"

namespace mailsync::sync {

namespace {

using postgres::detail::exec;
using postgres::detail::NullableParam;
using postgres::detail::TextArray;
using postgres::queries::Query;

constexpr Query kEnsureRoute{"sync_ensure_route", R"sql(
INSERT INTO mailsync.routes (route_key, gmail_email, outlook_email, target_folder, enabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (route_key) DO NOTHING
)sql"};

constexpr Query kWatermarkGet{
    "sync_watermark_get",
    "SELECT uidvalidity, last_uid FROM mailsync.watermarks WHERE route_key = $1"};

// Same UIDVALIDITY: never backwards. New UIDVALIDITY: replaced.
constexpr Query kWatermarkSet{"sync_watermark_set", R"sql(
INSERT INTO mailsync.watermarks AS w (route_key, uidvalidity, last_uid) VALUES ($1, $2, $3)
ON CONFLICT (route_key) DO UPDATE
SET last_uid = CASE WHEN w.uidvalidity = EXCLUDED.uidvalidity THEN GREATEST(w.last_uid, EXCLUDED.last_uid)
                    ELSE EXCLUDED.last_uid END,
    uidvalidity = EXCLUDED.uidvalidity, updated_at = now()
)sql"};

// The lease of a fenced write, locked until the write commits: a rescue (UPDATE of the job row)
// waits for it, so "the lease was live" still holds when the write becomes visible.
constexpr Query kLease{"sync_lease", R"sql(
SELECT 1 FROM mailsync.jobs
WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND state = 'running' AND lease_expires_at > now()
FOR SHARE
)sql"};

// The conditional insert of invariant 2; existing claims are reported as they are.
constexpr Query kClaim{"sync_claim", R"sql(
WITH input AS (
  SELECT * FROM unnest($3::bigint[], $6::text[], $7::text[], $8::bigint[], $9::numeric[], $10::bigint[])
           AS r(uid, message_id, sha256_hex, size, gm_msgid, internaldate)
),
inserted AS (
  INSERT INTO mailsync.uid_claims (route_key, uidvalidity, uid, state, job_id, attempt, message_id, sha256, size,
                                   gm_msgid, internaldate, dest_uidnext)
  SELECT $1, $2, uid, 'PENDING', $4, $5, message_id, decode(sha256_hex, 'hex'), size, gm_msgid,
         'epoch'::timestamptz + internaldate * interval '1 microsecond', 0  -- 0: not sent yet
  FROM input
  ON CONFLICT (route_key, uidvalidity, uid) DO NOTHING
  RETURNING uid
)
SELECT i.uid, CASE WHEN n.uid IS NOT NULL THEN 'CLAIMED' ELSE c.state END, c.dest_uid, c.message_id, c.size
FROM input i
LEFT JOIN inserted n ON n.uid = i.uid
LEFT JOIN mailsync.uid_claims c ON n.uid IS NULL AND c.route_key = $1 AND c.uidvalidity = $2 AND c.uid = i.uid
)sql"};

constexpr Query kFinalize{"sync_finalize", R"sql(
WITH input AS (
  SELECT * FROM unnest($3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[],
                       $10::numeric[])
           AS f(uid, dest_uidvalidity, dest_uid, message_id, sha256_hex, size, internaldate, gm_msgid)
),
done AS (
  UPDATE mailsync.uid_claims c
  SET state = 'DONE', done_at = now(), dest_uidvalidity = f.dest_uidvalidity, dest_uid = f.dest_uid,
      message_id = f.message_id, sha256 = decode(f.sha256_hex, 'hex'), size = f.size,
      internaldate = 'epoch'::timestamptz + f.internaldate * interval '1 microsecond',
      gm_msgid = coalesce(f.gm_msgid, c.gm_msgid)
  FROM input f
  WHERE c.route_key = $1 AND c.uidvalidity = $2 AND c.uid = f.uid AND c.state = 'PENDING'
    AND c.job_id = $11 AND c.attempt = $12
  RETURNING c.uid
),
cleared AS (
  DELETE FROM mailsync.failures x USING done d WHERE x.route_key = $1 AND x.uidvalidity = $2 AND x.uid = d.uid
)
SELECT count(*) FROM done
)sql"};

constexpr Query kDestinationMark{"sync_destination_mark", R"sql(
WITH marked AS (
  UPDATE mailsync.uid_claims SET dest_uidvalidity = $6, dest_uidnext = $7
  WHERE route_key = $1 AND uidvalidity = $2 AND uid = ANY($3::bigint[]) AND state = 'PENDING'
    AND job_id = $4 AND attempt = $5
  RETURNING 1
)
SELECT count(*) FROM marked
)sql"};

constexpr Query kRelease{"sync_release", R"sql(
WITH released AS (
  DELETE FROM mailsync.uid_claims
  WHERE route_key = $1 AND uidvalidity = $2 AND uid = ANY($3::bigint[]) AND state = 'PENDING'
    AND job_id = $4 AND attempt = $5
  RETURNING 1
)
SELECT count(*) FROM released
)sql"};

// Crash recovery's takeover: PENDING claims of attempts that are over become the caller's.
constexpr Query kAdoptPending{"sync_adopt_pending", R"sql(
UPDATE mailsync.uid_claims c SET job_id = $2, attempt = $3
WHERE c.route_key = $1 AND c.state = 'PENDING'
  AND NOT (c.job_id IS NOT DISTINCT FROM $2 AND c.attempt IS NOT DISTINCT FROM $3)
  AND NOT mailsync.attempt_may_be_running(c.job_id, c.attempt, $4::bigint * interval '1 millisecond')
RETURNING c.uidvalidity, c.uid, c.message_id, c.size, encode(c.sha256, 'hex'), c.gm_msgid::text,
          (extract(epoch FROM c.internaldate) * 1000000)::bigint, c.dest_uidvalidity, c.dest_uidnext
)sql"};

// After the takeover: the PENDING claims still another attempt's (it may still be appending).
constexpr Query kInDoubt{"sync_in_doubt", R"sql(
SELECT count(*) FROM mailsync.uid_claims
WHERE route_key = $1 AND state = 'PENDING'
  AND NOT (job_id IS NOT DISTINCT FROM $2 AND attempt IS NOT DISTINCT FROM $3)
)sql"};

// When a transient failure is retried is decided in C++ (sync::next_message_retry_at, with the
// run's clock), from the retry count kFailureRetryCounts read before; stored as given.
constexpr Query kRecordFailures{"sync_record_failures", R"sql(
INSERT INTO mailsync.failures AS x (route_key, uidvalidity, uid, reason, last_error, permanent, next_retry_at,
                                    message_id, size)
SELECT $1, $2, f.uid, f.reason, f.error, f.permanent,
       CASE WHEN f.permanent THEN NULL
            ELSE coalesce('epoch'::timestamptz + f.retry_us * interval '1 microsecond', now()) END,
       f.message_id, f.size
FROM unnest($3::bigint[], $4::text[], $5::text[], $6::boolean[], $7::bigint[], $8::text[], $9::bigint[])
     AS f(uid, reason, error, permanent, retry_us, message_id, size)
ON CONFLICT (route_key, uidvalidity, uid) DO UPDATE
SET reason = EXCLUDED.reason, last_error = EXCLUDED.last_error, permanent = EXCLUDED.permanent,
    next_retry_at = EXCLUDED.next_retry_at,
    retry_count = x.retry_count + 1, updated_at = now(),
    message_id = coalesce(EXCLUDED.message_id, x.message_id), size = coalesce(EXCLUDED.size, x.size)
RETURNING uid, retry_count
)sql"};

constexpr Query kFailureRetryCounts{"sync_failure_retry_counts", R"sql(
SELECT uid, retry_count FROM mailsync.failures
WHERE route_key = $1 AND uidvalidity = $2 AND uid = ANY($3::bigint[])
)sql"};

constexpr Query kDueFailures{"sync_due_failures", R"sql(
SELECT uid FROM mailsync.failures
WHERE route_key = $1 AND uidvalidity = $2 AND NOT permanent
  AND next_retry_at <= 'epoch'::timestamptz + $3::bigint * interval '1 microsecond'
ORDER BY uid
)sql"};

constexpr Query kFailedUids{
    "sync_failed_uids",
    "SELECT uid FROM mailsync.failures WHERE route_key = $1 AND uidvalidity = $2"};

constexpr Query kCopiedUidsAbove{"sync_copied_uids_above", R"sql(
SELECT uid FROM mailsync.uid_claims
WHERE route_key = $1 AND uidvalidity = $2 AND uid > $3 AND state = 'DONE'
)sql"};

constexpr Query kCopiedGmMsgids{"sync_copied_gm_msgids", R"sql(
SELECT gm_msgid::text FROM mailsync.uid_claims
WHERE route_key = $1 AND state = 'DONE' AND gm_msgid = ANY($2::numeric[])
)sql"};

// Message-ID plus SHA-256: two messages with one Message-ID but different bytes are both copied.
constexpr Query kCopiedMessage{"sync_copied_message", R"sql(
SELECT 1 FROM mailsync.uid_claims
WHERE route_key = $1 AND state = 'DONE' AND sha256 = decode($3, 'hex')
  AND message_id IS NOT DISTINCT FROM $2
LIMIT 1
)sql"};

constexpr Query kSetOutcome{"sync_set_outcome", R"sql(
UPDATE mailsync.routes
SET last_outcome = $2, last_error = NULLIF($3, ''), last_run_at = now(),
    last_success_at = CASE WHEN $4 THEN now() ELSE last_success_at END, updated_at = now()
WHERE route_key = $1
)sql"};

constexpr Query kSetAuthRequired{"sync_set_auth_required", R"sql(
UPDATE mailsync.routes
SET auth_state = 'auth_required', auth_detail = $2, last_outcome = 'auth_required', last_error = $2,
    last_run_at = now(), updated_at = now(),
    auth_required_at = CASE WHEN auth_state = 'auth_required' THEN auth_required_at ELSE now() END
WHERE route_key = $1
)sql"};

constexpr Query kSetWatchState{"sync_set_watch_state", R"sql(
UPDATE mailsync.routes SET watch_state = $2, watch_detail = NULLIF($3, ''), watch_updated_at = now()
WHERE route_key = $1
)sql"};

// The watch's "mail arrived": a new route_sync now, or the queued one brought forward (only a
// scheduled one never attempted: a retry's backoff is kept), or word that one is running.
constexpr Query kRequestSync{"sync_request_sync", R"sql(
WITH route AS (
  SELECT route_key FROM mailsync.routes
  WHERE route_key = $1 AND enabled AND NOT paused AND auth_state = 'ok'
),
ins AS (
  INSERT INTO mailsync.jobs (kind, route_key, priority)
  SELECT 'route_sync', route_key, $2 FROM route
  ON CONFLICT (route_key) WHERE kind = 'route_sync' AND finished_at IS NULL DO NOTHING
  RETURNING id
),
forward AS (
  UPDATE mailsync.jobs j SET run_at = now(), priority = least(j.priority, $2::smallint)
  FROM route
  WHERE j.kind = 'route_sync' AND j.route_key = route.route_key AND j.finished_at IS NULL
    AND j.state = 'available' AND j.attempt = 0 AND j.run_at > now()
  RETURNING j.id
)
SELECT (SELECT count(*) FROM route), (SELECT count(*) FROM ins),
       (SELECT state::text FROM mailsync.jobs
        WHERE kind = 'route_sync' AND route_key = $1 AND finished_at IS NULL)
)sql"};

constexpr Query kRecordToken{"sync_record_token", R"sql(
INSERT INTO mailsync.refresh_tokens AS t (token_key, provider, account, fingerprint, rule,
                                          last_refresh_at, refused_at, refused_detail)
VALUES ($1, $2, $3, $4, $5, 'epoch'::timestamptz + $6::bigint * interval '1 microsecond',
        CASE WHEN $7::text IS NOT NULL THEN now() END, $7)
ON CONFLICT (token_key) DO UPDATE
SET first_seen_at = CASE WHEN t.fingerprint <> EXCLUDED.fingerprint THEN now() ELSE t.first_seen_at END,
    last_refresh_at = CASE WHEN t.fingerprint <> EXCLUDED.fingerprint THEN EXCLUDED.last_refresh_at
                           ELSE greatest(t.last_refresh_at, EXCLUDED.last_refresh_at) END,
    refused_at = CASE WHEN EXCLUDED.refused_detail IS NOT NULL THEN coalesce(t.refused_at, now())
                      WHEN EXCLUDED.last_refresh_at IS NOT NULL THEN NULL
                      ELSE t.refused_at END,
    refused_detail = CASE WHEN EXCLUDED.refused_detail IS NOT NULL THEN EXCLUDED.refused_detail
                          WHEN EXCLUDED.last_refresh_at IS NOT NULL THEN NULL
                          ELSE t.refused_detail END,
    fingerprint = EXCLUDED.fingerprint, provider = EXCLUDED.provider, account = EXCLUDED.account,
    rule = EXCLUDED.rule, updated_at = now()
)sql"};

constexpr Query kAccountBackoff{"sync_account_backoff", R"sql(
SELECT (extract(epoch FROM not_before) * 1000000)::bigint, reason FROM mailsync.account_backoff
WHERE account = $1 AND not_before > 'epoch'::timestamptz + $2::bigint * interval '1 microsecond'
)sql"};

constexpr Query kSetAccountBackoff{"sync_set_account_backoff", R"sql(
INSERT INTO mailsync.account_backoff (account, not_before, reason)
VALUES ($1, 'epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3)
ON CONFLICT (account) DO UPDATE
SET not_before = greatest(account_backoff.not_before, excluded.not_before),
    reason = CASE WHEN excluded.not_before >= account_backoff.not_before THEN excluded.reason
                  ELSE account_backoff.reason END,
    updated_at = now()
)sql"};

constexpr Query kAuthRequired{
    "sync_auth_required",
    "SELECT auth_state = 'auth_required' FROM mailsync.routes WHERE route_key = $1"};

constexpr Query kSetProgress{"sync_set_progress", R"sql(
INSERT INTO mailsync.route_progress AS p (route_key, job_id, started_at, updated_at, messages_done,
                                         messages_total, bytes_done, bytes_total, rate_per_s,
                                         eta_seconds)
VALUES ($1, $2, now() - make_interval(secs => $3), now(), $4, $5, $6, $7, $8, $9)
ON CONFLICT (route_key) DO UPDATE
SET job_id = EXCLUDED.job_id, started_at = EXCLUDED.started_at, updated_at = now(),
    messages_done = EXCLUDED.messages_done, messages_total = EXCLUDED.messages_total,
    bytes_done = EXCLUDED.bytes_done, bytes_total = EXCLUDED.bytes_total,
    rate_per_s = EXCLUDED.rate_per_s, eta_seconds = EXCLUDED.eta_seconds
)sql"};

constexpr Query kClearProgress{"sync_clear_progress",
                               "DELETE FROM mailsync.route_progress WHERE route_key = $1"};

// Header-derived values go in as text any bytes survive (util::encode_header_bytes).
std::optional<std::string> stored(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  return util::encode_header_bytes(*value);
}

std::string uid_array(const std::vector<uint32_t>& uids) {
  return postgres::detail::int_array(std::span<const uint32_t>(uids));
}

class PgSyncStore final : public SyncStore {
 public:
  PgSyncStore(std::string url, const std::string& application_name)
      : db_(std::move(url), application_name) {}

  void ensure_route(const config::Route& route) override {
    write(kEnsureRoute, route.key(), route.gmail_email, route.outlook_email, route.target_folder,
          route.enabled);
  }

  std::optional<Watermark> watermark(const std::string& route) override {
    return db_.run([&]() -> std::optional<Watermark> {
      pqxx::nontransaction work(db_.connection());
      const pqxx::result r = exec(work, kWatermarkGet, route);
      if (r.empty()) return std::nullopt;
      return Watermark{r[0][0].as<uint32_t>(), r[0][1].as<uint32_t>()};
    });
  }

  void set_watermark(const Fence& fence, const std::string& route, const Watermark& w) override {
    fenced(fence, [&](pqxx::work& work) {
      exec(work, kWatermarkSet, route, int64_t{w.uidvalidity}, int64_t{w.last_uid});
    });
  }

  std::map<uint32_t, ClaimState> claim(const std::string& route, uint32_t uidvalidity,
                                       const std::vector<ClaimRequest>& requests,
                                       const Fence& fence) override {
    std::map<uint32_t, ClaimState> out;
    if (requests.empty()) return out;
    TextArray uids, ids, shas, sizes, gm, dates;
    for (const auto& r : requests) {
      uids.add(std::to_string(r.uid));
      ids.add_optional(stored(r.message_id));
      shas.add(r.sha256_hex);
      sizes.add(std::to_string(r.size));
      gm.add_optional(r.gm_msgid);
      dates.add_time(r.internaldate);
    }
    fenced(fence, [&](pqxx::work& work) {  // committed, so durable, before any APPEND (invariant 2)
      const pqxx::result r =
          exec(work, kClaim, route, int64_t{uidvalidity}, uids.str(), fence.job_id, fence.attempt,
               ids.str(), shas.str(), sizes.str(), gm.str(), dates.str());
      for (const auto& row : r) {
        ClaimState state;
        const auto kind = row[1].as<std::string>();
        state.kind = kind == "CLAIMED" ? ClaimState::Kind::kClaimed
                     : kind == "DONE"  ? ClaimState::Kind::kDone
                                       : ClaimState::Kind::kPending;
        if (!row[2].is_null()) state.dest_uid = row[2].as<uint32_t>();
        if (!row[3].is_null())
          state.message_id = util::decode_header_bytes(row[3].as<std::string>());
        if (!row[4].is_null()) state.size = row[4].as<int64_t>();
        out[row[0].as<uint32_t>()] = state;
      }
    });
    return out;
  }

  void finalize(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                const std::vector<Copied>& copied) override {
    if (copied.empty()) return;
    TextArray uids, dest_v, dest_uids, ids, shas, sizes, dates, gm;
    for (const Copied& c : copied) {
      uids.add(std::to_string(c.uid));
      dest_v.add_optional(c.dest_uidvalidity);
      dest_uids.add_optional(c.dest_uid);
      ids.add_optional(stored(c.message_id));
      shas.add(c.sha256_hex);
      sizes.add(std::to_string(c.size));
      dates.add_time(c.internaldate);
      gm.add_optional(c.gm_msgid);
    }
    fenced(fence, [&](pqxx::work& work) {
      const pqxx::result r = exec(work, kFinalize, route, int64_t{uidvalidity}, uids.str(),
                                  dest_v.str(), dest_uids.str(), ids.str(), shas.str(), sizes.str(),
                                  dates.str(), gm.str(), fence.job_id, fence.attempt);
      expect_own(fence, "finalize", r[0][0].as<size_t>(), copied.size());
    });
  }

  void record_destination_mark(const Fence& fence, const std::string& route, uint32_t uidvalidity,
                               const std::vector<uint32_t>& uids,
                               std::optional<uint32_t> dest_uidvalidity,
                               std::optional<uint32_t> dest_uidnext) override {
    if (uids.empty()) return;
    const auto wide = [](std::optional<uint32_t> v) {
      return v ? std::optional<int64_t>(*v) : std::nullopt;
    };
    fenced(fence, [&](pqxx::work& work) {
      const pqxx::result r =
          exec(work, kDestinationMark, route, int64_t{uidvalidity}, uid_array(uids), fence.job_id,
               fence.attempt, wide(dest_uidvalidity), wide(dest_uidnext));
      expect_own(fence, "record_destination_mark", r[0][0].as<size_t>(), uids.size());
    });
  }

  void release(const Fence& fence, const std::string& route, uint32_t uidvalidity,
               const std::vector<uint32_t>& uids) override {
    if (uids.empty()) return;
    fenced(fence, [&](pqxx::work& work) {
      const pqxx::result r = exec(work, kRelease, route, int64_t{uidvalidity}, uid_array(uids),
                                  fence.job_id, fence.attempt);
      expect_own(fence, "release", r[0][0].as<size_t>(), uids.size());
    });
  }

  Adopted adopt_pending(const Fence& fence, const std::string& route,
                        std::chrono::milliseconds grace) override {
    Adopted out;
    fenced(fence, [&](pqxx::work& work) {
      for (const auto& row :
           exec(work, kAdoptPending, route, fence.job_id, fence.attempt, int64_t{grace.count()})) {
        PendingClaim claim{row[0].as<uint32_t>(), row[1].as<uint32_t>(), std::nullopt, std::nullopt,
                           ""};
        if (!row[2].is_null())
          claim.message_id = util::decode_header_bytes(row[2].as<std::string>());
        if (!row[3].is_null()) claim.size = row[3].as<int64_t>();
        if (!row[4].is_null()) claim.sha256_hex = row[4].as<std::string>();
        if (!row[5].is_null()) claim.gm_msgid = std::stoull(row[5].as<std::string>());
        if (!row[6].is_null())
          claim.internaldate = postgres::detail::from_micros(row[6].as<int64_t>());
        if (!row[7].is_null()) claim.dest_uidvalidity = row[7].as<uint32_t>();
        if (!row[8].is_null()) claim.dest_uidnext = row[8].as<uint32_t>();
        out.claims.push_back(claim);
      }
      out.in_doubt = exec(work, kInDoubt, route, fence.job_id, fence.attempt)[0][0].as<int64_t>();
    });
    std::sort(out.claims.begin(), out.claims.end(),
              [](const PendingClaim& x, const PendingClaim& y) {
                return std::tie(x.uidvalidity, x.uid) < std::tie(y.uidvalidity, y.uid);
              });
    return out;
  }

  std::map<uint32_t, int> record_failures(const Fence& fence, const std::string& route,
                                          uint32_t uidvalidity,
                                          const std::vector<Failure>& failures) override {
    if (failures.empty()) return {};
    TextArray uids, reasons, errors, permanent, retry, ids, sizes;
    for (const Failure& f : failures) {
      uids.add(std::to_string(f.uid));
      reasons.add(f.reason);
      errors.add(util::safe_text(f.error.empty() ? f.reason : f.error));
      permanent.add(f.permanent ? "t" : "f");
      retry.add_time(f.next_retry_at);
      ids.add_optional(stored(f.message_id));
      sizes.add_optional(f.size);
    }
    std::map<uint32_t, int> counts;
    fenced(fence, [&](pqxx::work& work) {
      const pqxx::result rows =
          exec(work, kRecordFailures, route, int64_t{uidvalidity}, uids.str(), reasons.str(),
               errors.str(), permanent.str(), retry.str(), ids.str(), sizes.str());
      for (const auto& row : rows) counts[row[0].as<uint32_t>()] = row[1].as<int>();
    });
    return counts;
  }

  std::map<uint32_t, int> failure_retry_counts(const std::string& route, uint32_t uidvalidity,
                                               const std::vector<uint32_t>& uids) override {
    if (uids.empty()) return {};
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());
      std::map<uint32_t, int> counts;
      for (const auto& row :
           exec(work, kFailureRetryCounts, route, int64_t{uidvalidity}, uid_array(uids)))
        counts[row[0].as<uint32_t>()] = row[1].as<int>();
      return counts;
    });
  }

  std::vector<uint32_t> due_failures(const std::string& route, uint32_t uidvalidity,
                                     TimePoint now) override {
    return uids_of(kDueFailures, route, int64_t{uidvalidity}, postgres::detail::to_micros(now));
  }

  std::set<uint32_t> copied_uids_above(const std::string& route, uint32_t uidvalidity,
                                       uint32_t above_uid) override {
    const auto uids = uids_of(kCopiedUidsAbove, route, int64_t{uidvalidity}, int64_t{above_uid});
    return {uids.begin(), uids.end()};
  }

  std::set<uint32_t> failed_uids(const std::string& route, uint32_t uidvalidity) override {
    const auto uids = uids_of(kFailedUids, route, int64_t{uidvalidity});
    return {uids.begin(), uids.end()};
  }

  std::set<uint64_t> copied_gm_msgids(const std::string& route,
                                      const std::vector<uint64_t>& ids) override {
    if (ids.empty()) return {};
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());
      std::set<uint64_t> out;
      for (const auto& row : exec(work, kCopiedGmMsgids, route,
                                  postgres::detail::int_array(std::span<const uint64_t>(ids))))
        out.insert(std::stoull(row[0].as<std::string>()));
      return out;
    });
  }

  bool copied_message(const std::string& route, const std::optional<std::string>& message_id,
                      const std::string& sha256_hex) override {
    const NullableParam id(stored(message_id));
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());
      return !exec(work, kCopiedMessage, route, id.get(), sha256_hex).empty();
    });
  }

  void set_outcome(const std::string& route, const std::string& outcome, const std::string& error,
                   bool success) override {
    write(kSetOutcome, route, outcome, util::safe_text(error), success);
  }

  void set_progress(const std::string& route, const Progress& p) override {
    write(kSetProgress, route, p.job_id, p.elapsed_seconds, p.messages_done, p.messages_total,
          p.bytes_done, p.bytes_total, p.rate_per_s, p.eta_seconds);
  }

  void clear_progress(const std::string& route) override { write(kClearProgress, route); }

  void set_auth_required(const std::string& route, const std::string& detail) override {
    write(kSetAuthRequired, route, util::safe_text(detail));
  }

  void set_watch_state(const std::string& route, const std::string& state,
                       const std::string& detail) override {
    write(kSetWatchState, route, state, util::safe_text(detail));
  }

  SyncRequest request_sync(const std::string& route, int priority) override {
    return db_.run([&] {
      pqxx::work work(db_.connection());
      const pqxx::result r = exec(work, kRequestSync, route, priority);
      work.commit();
      if (r[0][0].as<int>() == 0) return SyncRequest::kNotRunnable;
      if (r[0][1].as<int>() > 0) return SyncRequest::kEnqueued;
      return r[0][2].is_null() || r[0][2].as<std::string>() != "running" ? SyncRequest::kQueued
                                                                         : SyncRequest::kRunning;
    });
  }

  void record_token(const TokenRecord& r) override {
    const NullableParam refreshed = NullableParam::time(r.refreshed_at);
    const NullableParam refused(r.refused ? std::optional<std::string>(util::safe_text(*r.refused))
                                          : std::nullopt);
    write(kRecordToken, r.token_key, r.provider, r.account, r.fingerprint, r.rule, refreshed.get(),
          refused.get());
  }

  std::optional<Backoff> account_backoff(const std::string& account, TimePoint now) override {
    return db_.run([&]() -> std::optional<Backoff> {
      pqxx::nontransaction work(db_.connection());
      const pqxx::result r = exec(work, kAccountBackoff, account, postgres::detail::to_micros(now));
      if (r.empty()) return std::nullopt;
      return Backoff{postgres::detail::from_micros(r[0][0].as<int64_t>()),
                     r[0][1].as<std::string>()};
    });
  }

  void set_account_backoff(const std::string& account, const Backoff& backoff) override {
    write(kSetAccountBackoff, account, postgres::detail::to_micros(backoff.not_before),
          util::safe_text(backoff.reason));
  }

  bool auth_required(const std::string& route) override {
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());
      const pqxx::result r = exec(work, kAuthRequired, route);
      return !r.empty() && r[0][0].as<bool>();
    });
  }

 private:
  // One transaction: the lease checked and locked, then `body`, then the commit.
  template <typename Fn>
  void fenced(const Fence& fence, Fn&& body) {
    db_.run([&] {
      pqxx::work work(db_.connection());
      if (exec(work, kLease, fence.job_id, fence.attempt, fence.owner).empty())
        throw LeaseLost("job " + std::to_string(fence.job_id) + " attempt " +
                        std::to_string(fence.attempt) + " no longer holds its lease (" +
                        fence.owner + "): rescued, expired or finished elsewhere");
      body(work);
      work.commit();
    });
  }

  // With the lease held, every claim the run names is its own; fewer rows means one is not.
  static void expect_own(const Fence& fence, const char* what, size_t matched, size_t given) {
    if (matched != given)
      throw LeaseLost(std::string(what) + ": " + std::to_string(given - matched) + " of " +
                      std::to_string(given) + " claims are not PENDING claims of job " +
                      std::to_string(fence.job_id) + " attempt " + std::to_string(fence.attempt));
  }

  template <typename... Args>
  void write(const Query& query, Args&&... args) {
    db_.run([&] {
      pqxx::nontransaction work(db_.connection());  // one statement commits by itself
      exec(work, query, std::forward<Args>(args)...);
    });
  }

  template <typename... Args>
  std::vector<uint32_t> uids_of(const Query& query, Args&&... args) {
    return db_.run([&] {
      pqxx::nontransaction work(db_.connection());
      std::vector<uint32_t> out;
      for (const auto& row : exec(work, query, std::forward<Args>(args)...))
        out.push_back(row[0].template as<uint32_t>());
      return out;
    });
  }

  postgres::detail::StoreConnection db_;
};

}  // namespace

std::unique_ptr<SyncStore> make_pg_sync_store(const std::string& database_url,
                                              const std::string& application_name) {
  return std::make_unique<PgSyncStore>(database_url, application_name);
}

}  // namespace mailsync::sync
