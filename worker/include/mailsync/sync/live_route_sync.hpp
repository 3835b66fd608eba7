#pragma once

#include <atomic>

#include "mailsync/config/config.hpp"
#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/imap/client.hpp"
#include "mailsync/oauth/token_provider.hpp"
#include "mailsync/sync/imap_pool.hpp"
#include "mailsync/sync/route_sync.hpp"
#include "mailsync/sync/sync_store.hpp"

// RouteSync wired to the real servers: the route's Gmail INBOX (ImapMailSource), the Outlook
// folder (ImapMailDestination), the Postgres store, the DynamoDB table (DynamoStateMirror). The
// worker's job handler and `mailsync run-once` run routes through this.
namespace mailsync::sync {

class LiveRouteSync {
 public:
  // `gmail` may be null: then a new Gmail connection for this run only (run-once).
  LiveRouteSync(const config::Settings& settings, const config::Route& route,
                oauth::TokenProvider& tokens, SyncStore& store, dynamo::DynamoClient& dynamo,
                ImapPool& outlook, SyncOptions options = {}, ImapPool* gmail = nullptr);

  SyncReport run(const RunLease& lease, const std::atomic<bool>& cancel);

 private:
  void record_tokens();

  const config::Settings& settings_;
  const config::Route& route_;
  oauth::TokenProvider& tokens_;
  SyncStore& store_;
  dynamo::DynamoClient& dynamo_;
  ImapPool& outlook_;
  SyncOptions options_;
  ImapPool* gmail_;
};

// IMAP options for an endpoint of the settings (implicit TLS, MAILSYNC_TLS_CA_FILE).
imap::ClientOptions imap_options(const config::Settings& settings,
                                 const config::Endpoint& endpoint);
oauth::Credential gmail_credential(const config::Settings& settings, const config::Route& route);
oauth::Credential outlook_credential(const config::Settings& settings);

}  // namespace mailsync::sync
