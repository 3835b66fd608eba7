#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/sync/state_mirror.hpp"
#include "mailsync/util/lanes.hpp"

// StateMirror on the DynamoDB table of the Lambda version. It owns the item layout (DESIGN.md
// section 5, the seed's attributes):
//   WATERMARK                 uidvalidity, last_uid, updated_at
//   UID#<uidvalidity>#<uid>   status (PENDING | DONE), rfc822_sha256, message_id_header, copied_at,
//                             ttl, and (added, not the seed's) claimed_by
//   FAIL#<uidvalidity>#<uid>  last_error, retry_count, updated_at, ttl
// claimed_by is "mailsync:<job>/<attempt>" on every item mailsync writes. An item without it (the
// Lambda's, or another tool's) is another writer's: mailsync never takes it for its own and never
// deletes it. Which mailsync attempt owns a UID is Postgres's to say (the fence); the attribute
// tells mailsync's items from other writers' and names the attempt for operators.
// Claims go out on up to kClaimLanes lanes in parallel (one conditional PutItem is one round
// trip), each lane with a client of its own kept for the whole run; a batch's DONE items
// (BatchWriteItem, 25 a call) and releases on up to kCommitLanes others, since they run on the
// run's thread while the next batch's claims run on the prepare thread. The rest uses `main`.
namespace mailsync::sync {

class DynamoStateMirror final : public StateMirror {
 public:
  using ClientFactory = std::function<std::unique_ptr<dynamo::DynamoClient>()>;
  // 200 claims a batch at a 10 ms round trip (DynamoDB from another machine; bench/sync's WAN
  // path): 8 lanes took ~380 ms a batch, the longest step; 32 take ~75 ms. Above that the batch's
  // other steps decide, and dynalite's one core on loopback gains nothing.
  static constexpr size_t kClaimLanes = 32;
  static constexpr size_t kCommitLanes = 8;

  // `lanes` makes the lanes' clients; by default copies of `main`'s options.
  // `claimed_by`: kClaimedByPrefix + "<job>/<attempt>" of the run.
  DynamoStateMirror(dynamo::DynamoClient& main, std::string route_key, std::string claimed_by,
                    std::chrono::seconds ttl, std::function<TimePoint()> now,
                    ClientFactory lanes = {});
  static constexpr const char* kClaimedByPrefix = "mailsync:";

  void check_gate() override;
  std::optional<Watermark> carried_over_watermark() override;
  std::map<uint32_t, std::string> claim(uint32_t uidvalidity,
                                        const std::vector<MirrorClaim>& claims) override;
  void record(uint32_t uidvalidity, const std::vector<MirrorClaim>& done,
              const std::vector<MirrorFailure>& failures) override;
  void release(uint32_t uidvalidity, const std::vector<uint32_t>& uids) override;
  void set_watermark(const Watermark& watermark) override;

  // The sort keys.
  static std::string uid_sk(uint32_t uidvalidity, uint32_t uid);
  static std::string fail_sk(uint32_t uidvalidity, uint32_t uid);

 private:
  nlohmann::json uid_item(uint32_t uidvalidity, const MirrorClaim& claim,
                          const std::string& status) const;
  nlohmann::json expiry() const;
  // A lane: a thread of `threads` with a client of its own.
  struct Lanes {
    util::Lanes threads;
    std::vector<std::unique_ptr<dynamo::DynamoClient>> clients;
  };
  // Runs task(i, client) for i in [0, tasks) on up to `most` lanes at once; every lane is waited
  // for, then the first failure is thrown.
  void on_lanes(Lanes& lanes, size_t most, size_t tasks,
                const std::function<void(size_t, dynamo::DynamoClient&)>& task);

  dynamo::DynamoClient& main_;
  std::string key_;
  std::string claimed_by_;
  std::chrono::seconds ttl_;
  std::function<TimePoint()> now_;
  ClientFactory make_lane_;
  Lanes claim_lanes_;   // the prepare thread's (claim)
  Lanes commit_lanes_;  // the run's thread's (record, release)
};

}  // namespace mailsync::sync
