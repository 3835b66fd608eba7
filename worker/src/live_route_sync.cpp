#include "mailsync/sync/live_route_sync.hpp"

#include "mailsync/sync/dynamo_state_mirror.hpp"
#include "mailsync/sync/imap_mail_destination.hpp"
#include "mailsync/sync/imap_mail_source.hpp"

namespace mailsync::sync {

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

LiveRouteSync::LiveRouteSync(const config::Settings& settings, const config::Route& route,
                             oauth::TokenProvider& tokens, SyncStore& store,
                             dynamo::DynamoClient& dynamo, ImapPool& outlook, SyncOptions options,
                             ImapPool* gmail)
    : settings_(settings),
      route_(route),
      tokens_(tokens),
      store_(store),
      dynamo_(dynamo),
      outlook_(outlook),
      options_(std::move(options)),
      gmail_(gmail) {
  options_.reconcile_grace = settings.reconcile_grace;
}

SyncReport LiveRouteSync::run(const RunLease& lease, const std::atomic<bool>& cancel) {
  // Without a worker's pool, a pool for this run alone: its connection closes when the run ends.
  ImapPool own_gmail(
      [this] { return imap::Client::connect(imap_options(settings_, settings_.gmail_imap)); });
  ImapMailSource source(gmail_ ? *gmail_ : own_gmail, route_.gmail_email,
                        gmail_credential(settings_, route_), tokens_);
  ImapMailDestination destination(outlook_, route_.outlook_email, outlook_credential(settings_),
                                  tokens_);
  DynamoStateMirror mirror(dynamo_, route_.key(),
                           DynamoStateMirror::kClaimedByPrefix +
                               std::to_string(lease.fence.job_id) + "/" +
                               std::to_string(lease.fence.attempt),
                           options_.dynamo_ttl, options_.now);
  return RouteSync(route_, {source, destination, store_, mirror}, options_).run(lease, cancel);
}

}  // namespace mailsync::sync
