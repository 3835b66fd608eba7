#include "mailsync/sync/dynamo_state_mirror.hpp"

#include "mailsync/util/strings.hpp"

#include <algorithm>

#include "mailsync/sync/outcome.hpp"
#include "time_format.hpp"

namespace mailsync::sync {

using dynamo::N;
using dynamo::S;
using nlohmann::json;

namespace {

// DynamoDB's errors end the run as a closed gate (invariant 6), with AWS's words.
template <typename Fn>
decltype(auto) guarded(Fn&& body) {
  try {
    return body();
  } catch (const dynamo::DynamoError& e) {
    throw MirrorUnavailable(e.what());
  }
}

}  // namespace

DynamoStateMirror::DynamoStateMirror(dynamo::DynamoClient& main, std::string route_key,
                                     std::string claimed_by, std::chrono::seconds ttl,
                                     std::function<TimePoint()> now, ClientFactory lanes)
    : main_(main),
      key_(std::move(route_key)),
      claimed_by_(std::move(claimed_by)),
      ttl_(ttl),
      now_(std::move(now)),
      make_lane_(std::move(lanes)) {
  if (!make_lane_)
    make_lane_ = [options = main_.options()] {
      return std::make_unique<dynamo::DynamoClient>(options);
    };
}

std::string DynamoStateMirror::uid_sk(uint32_t uidvalidity, uint32_t uid) {
  return "UID#" + std::to_string(uidvalidity) + "#" + std::to_string(uid);
}

std::string DynamoStateMirror::fail_sk(uint32_t uidvalidity, uint32_t uid) {
  return "FAIL#" + std::to_string(uidvalidity) + "#" + std::to_string(uid);
}

// When DynamoDB may expire an item (epoch seconds in `ttl`).
json DynamoStateMirror::expiry() const {
  return N(
      std::chrono::duration_cast<std::chrono::seconds>((now_() + ttl_).time_since_epoch()).count());
}

json DynamoStateMirror::uid_item(uint32_t uidvalidity, const MirrorClaim& claim,
                                 const std::string& status) const {
  json item = {{"PK", S(key_)},
               {"SK", S(uid_sk(uidvalidity, claim.uid))},
               {"status", S(status)},
               {"rfc822_sha256", S(claim.sha256_hex)},
               {"claimed_by", S(claimed_by_)},
               {"ttl", expiry()}};
  // As the seed's Lambda wrote it for ordinary Message-IDs; other bytes escaped, since a JSON
  // string holds UTF-8 only (util::encode_header_bytes).
  if (claim.message_id) item["message_id_header"] = S(util::encode_header_bytes(*claim.message_id));
  if (status == "DONE") item["copied_at"] = S(iso8601(now_()));
  return item;
}

void DynamoStateMirror::check_gate() {
  guarded([&] { main_.check_table(); });
}

std::optional<Watermark> DynamoStateMirror::carried_over_watermark() {
  return guarded([&]() -> std::optional<Watermark> {
    const auto item = main_.get(key_, "WATERMARK");
    if (!item) return std::nullopt;
    return Watermark{static_cast<uint32_t>(std::stoul((*item)["uidvalidity"].value("N", "0"))),
                     static_cast<uint32_t>(std::stoul((*item)["last_uid"].value("N", "0")))};
  });
}

void DynamoStateMirror::on_lanes(Lanes& lanes, size_t most, size_t tasks,
                                 const std::function<void(size_t, dynamo::DynamoClient&)>& task) {
  const size_t count = std::min(most, tasks);
  while (lanes.clients.size() < count) lanes.clients.push_back(make_lane_());
  lanes.threads.run(count, tasks, [&](size_t i, size_t lane) { task(i, *lanes.clients[lane]); });
}

std::map<uint32_t, std::string> DynamoStateMirror::claim(uint32_t uidvalidity,
                                                         const std::vector<MirrorClaim>& claims) {
  return guarded([&] {
    std::vector<std::string> refused(claims.size());  // by claim: the other writer's status
    on_lanes(claim_lanes_, kClaimLanes, claims.size(), [&](size_t i, dynamo::DynamoClient& db) {
      const MirrorClaim& c = claims[i];
      const json item = uid_item(uidvalidity, c, "PENDING");
      if (db.put_if_absent(item)) return;
      const auto existing = db.get(key_, uid_sk(uidvalidity, c.uid));
      const std::string status = existing ? (*existing)["status"].value("S", "") : "";
      const std::string holder = existing && existing->contains("claimed_by")
                                     ? (*existing)["claimed_by"].value("S", "")
                                     : "";
      // A PENDING item of an earlier mailsync attempt that is over (Postgres just gave this run
      // the UID) is taken over, conditionally on still being that attempt's. Anything else (DONE,
      // or another writer's PENDING item, whatever its SHA-256) is left as it is.
      if (status == "PENDING" && holder.starts_with(kClaimedByPrefix) &&
          db.put_if(item, "claimed_by = :holder", {{":holder", S(holder)}}))
        return;
      refused[i] = status.empty() ? "unknown" : status;
    });
    std::map<uint32_t, std::string> by_uid;
    for (size_t i = 0; i < claims.size(); ++i)
      if (!refused[i].empty()) by_uid[claims[i].uid] = refused[i];
    return by_uid;
  });
}

void DynamoStateMirror::record(uint32_t uidvalidity, const std::vector<MirrorClaim>& done,
                               const std::vector<MirrorFailure>& failures) {
  guarded([&] {
    std::vector<json> items;
    items.reserve(done.size() + failures.size());
    for (const auto& c : done) items.push_back(uid_item(uidvalidity, c, "DONE"));
    for (const auto& f : failures)
      items.push_back({{"PK", S(key_)},
                       {"SK", S(fail_sk(uidvalidity, f.uid))},
                       {"last_error", S(util::safe_text(f.error))},
                       {"retry_count", N(f.retry_count)},
                       {"updated_at", S(iso8601(now_()))},
                       {"ttl", expiry()}});
    // BatchWriteItem takes 25 items a call: the calls go out side by side.
    constexpr size_t kPerCall = dynamo::DynamoClient::kBatchWriteItems;
    on_lanes(commit_lanes_, kCommitLanes, (items.size() + kPerCall - 1) / kPerCall,
             [&](size_t call, dynamo::DynamoClient& db) {
               const auto first = items.begin() + static_cast<std::ptrdiff_t>(call * kPerCall);
               const auto last = items.begin() + static_cast<std::ptrdiff_t>(
                                                     std::min(items.size(), (call + 1) * kPerCall));
               db.batch_put(std::vector<json>(first, last));
             });
  });
}

void DynamoStateMirror::release(uint32_t uidvalidity, const std::vector<uint32_t>& uids) {
  guarded([&] {
    // Only mailsync's own PENDING items: another writer's is never deleted.
    on_lanes(commit_lanes_, kCommitLanes, uids.size(), [&](size_t i, dynamo::DynamoClient& db) {
      db.remove_pending(key_, uid_sk(uidvalidity, uids[i]), kClaimedByPrefix);
    });
  });
}

void DynamoStateMirror::set_watermark(const Watermark& watermark) {
  guarded([&] {
    main_.put({{"PK", S(key_)},
               {"SK", S("WATERMARK")},
               {"uidvalidity", N(watermark.uidvalidity)},
               {"last_uid", N(watermark.last_uid)},
               {"updated_at", S(iso8601(now_()))}});
  });
}

}  // namespace mailsync::sync
