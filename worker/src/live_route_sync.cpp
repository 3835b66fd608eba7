#include "mailsync/sync/live_route_sync.hpp"

#include <spdlog/spdlog.h>

#include "mailsync/sync/dynamo_state_mirror.hpp"
#include "mailsync/sync/imap_mail_destination.hpp"
#include "mailsync/sync/imap_mail_source.hpp"
#include "mailsync/util/sha256.hpp"

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
          "gmail " + route.gmail_email,
          route.gmail_oauth_app_testing ? "google_testing_7d" : "none"};
}

oauth::Credential outlook_credential(const config::Settings& settings) {
  return {oauth::Provider::kMicrosoft,
          settings.ms_token_url,
          settings.ms_client_id,
          settings.ms_client_secret,
          settings.ms_refresh_token.value_or(config::Secret()),
          "outlook " + settings.outlook_email,
          "microsoft_90d"};
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
  SyncReport report =
      RouteSync(route_, {source, destination, store_, mirror}, options_).run(lease, cancel);
  record_tokens();
  return report;
}

// A refresh that worked or a refusal of either token, once (not on every use of a cached access
// token): the TOKEN column of `status` and mailsync_refresh_token_expiry_timestamp_seconds.
void LiveRouteSync::record_tokens() {
  const std::pair<oauth::Credential, std::string> tokens[] = {
      {gmail_credential(settings_, route_), "gmail:" + route_.key()},
      {outlook_credential(settings_), "outlook:" + route_.outlook_email}};
  for (const auto& [credential, key] : tokens) {
    const oauth::TokenReport report = tokens_.take_report(credential);
    if (report.empty()) continue;
    const bool google = credential.provider == oauth::Provider::kGoogle;
    try {
      store_.record_token({key, google ? "google" : "microsoft",
                           google ? route_.gmail_email : route_.outlook_email,
                           util::Sha256::hex_of(credential.refresh_token.reveal()).substr(0, 16),
                           credential.expiry_rule, report.refreshed_at, report.refused});
    } catch (const std::exception& e) {
      // Only the announcement is lost; the next refresh writes it again.
      spdlog::warn("route_sync: the state of {}'s refresh token was not recorded: {}",
                   credential.label, e.what());
    }
  }
}

}  // namespace mailsync::sync
