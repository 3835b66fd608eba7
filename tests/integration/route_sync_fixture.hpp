// The route_sync integration fixture: a source mailbox of the "gmail" server claimed for the
// test, a destination folder of its own on the "outlook" server, a database of its own, DynamoDB
// on the stack's dynalite; runs a route as run-once does (its job, under a lease). Shared by
// route_sync_stacktest.cpp and providers_stacktest.cpp.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mailsync/dynamo/dynamo_client.hpp"
#include "mailsync/mail/rfc822.hpp"
#include "mailsync/postgres/migrator.hpp"
#include "mailsync/queue/lease_keeper.hpp"
#include "mailsync/sync/live_route_sync.hpp"
#include "mailsync/util/sha256.hpp"
#include "support/corpus.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "support/test_database.hpp"

namespace mailsync::testing {

// Every message of a folder: UID, SHA-256, flags, INTERNALDATE.
struct Stored {
  uint32_t uid = 0;
  std::string sha256;
  std::vector<std::string> flags;
  std::string internaldate;
};

class StoredSink : public imap::FetchSink {
 public:
  void body_begin(uint32_t seq, uint64_t) override { partial_[seq] = util::Sha256(); }
  void body_data(uint32_t seq, std::string_view bytes) override { partial_[seq].update(bytes); }
  void fetched(const imap::FetchData& data) override {
    const auto found = partial_.find(data.seq);
    if (!data.uid || found == partial_.end()) return;
    messages.push_back({*data.uid, util::to_hex(found->second.finish()),
                        data.flags.value_or(std::vector<std::string>{}),
                        data.internaldate.value_or("")});
    partial_.erase(found);
  }
  std::vector<Stored> messages;

 private:
  std::map<uint32_t, util::Sha256> partial_;
};

inline std::vector<Stored> read_folder(imap::Client& client, const std::string& folder) {
  StoredSink sink;
  if (client.examine(folder).exists > 0)
    client.uid_fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])", sink);
  return sink.messages;
}

inline std::multiset<std::string> hashes(const std::vector<Stored>& messages) {
  std::multiset<std::string> out;
  for (const auto& m : messages) out.insert(m.sha256);
  return out;
}

class RouteSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    postgres::Migrator(db_.url(), postgres::embedded_migrations()).run();
    user_ = claim_gmail_user();
    settings_.outlook_email = stack_env("OUTLOOK_EMAIL");
    settings_.ms_client_id = stack_env("MS_CLIENT_ID");
    settings_.ms_client_secret =
        config::Secret(stack_env("MS_CLIENT_SECRET"), config::Secret::Source::kEnv, "env:X");
    settings_.ms_refresh_token =
        config::Secret(stack_env("MS_REFRESH_TOKEN"), config::Secret::Source::kEnv, "env:Y");
    settings_.google_token_url = stack_env("GOOGLE_TOKEN_URL");
    settings_.ms_token_url = stack_env("MS_TOKEN_URL");
    settings_.gmail_imap = {stack_env("GMAIL_IMAP_HOST"),
                            static_cast<uint16_t>(std::stoi(stack_env("GMAIL_IMAP_PORT")))};
    settings_.outlook_imap = {stack_env("OUTLOOK_IMAP_HOST"),
                              static_cast<uint16_t>(std::stoi(stack_env("OUTLOOK_IMAP_PORT")))};
    settings_.tls_ca_file = stack_env("MAILSYNC_TLS_CA_FILE");
    route_ = make_route(user_);
    auto dynamo = dynamo::dynamo_options_from_env(settings_.tls_ca_file);
    ASSERT_TRUE(dynamo.options.has_value());
    dynamo_options_ = *dynamo.options;
    dynamo_ = std::make_unique<dynamo::DynamoClient>(dynamo_options_);
    dynamo_->create_table();
    store_ = sync::make_pg_sync_store(db_.url(), "route_sync test");
  }

  config::Route make_route(const std::string& user) {
    config::Route route;
    route.gmail_email = user;
    route.outlook_email = stack_env("OUTLOOK_EMAIL");
    route.target_folder = unique_name("Sync/" + user.substr(0, user.find('@')));
    route.gmail_client_id = stack_env("GMAIL_CLIENT_ID");
    route.gmail_client_secret =
        config::Secret(stack_env("GMAIL_CLIENT_SECRET"), config::Secret::Source::kEnv, "env:X");
    const std::string token = mint_refresh_token(Server::kGmail, user);
    route.gmail_refresh_token = config::Secret(token, config::Secret::Source::kInline, "inline");
    route.initial_sync = config::InitialSync::kAll;
    return route;
  }

  sync::SyncReport run(const config::Route& route, dynamo::DynamoClient* dynamo = nullptr) {
    sync::LiveRouteSync sync(settings_, route, tokens_, *store_, dynamo ? *dynamo : *dynamo_,
                             pool_);
    return leased_run(sync, route);
  }
  // As run-once runs a route: as its route_sync job, under a lease, the attempt recorded.
  sync::SyncReport leased_run(sync::LiveRouteSync& sync, const config::Route& route,
                              const std::atomic<bool>* cancel = nullptr) {
    queue::LeaseKeeper keeper(db_.url(), "route_sync test", route.key());
    const sync::RunLease lease{{keeper.job().id, keeper.job().attempt, "route_sync test"},
                               [&keeper] { return keeper.lease().fresh(); }};
    sync::SyncReport report = sync.run(lease, cancel ? *cancel : never_);
    keeper.finish(report.result, "test", sync::route_sync_retry_policy());
    return report;
  }
  std::unique_ptr<imap::Client> gmail_as(const std::string& user) {
    auto client = imap::Client::connect(imap_options(Server::kGmail));
    client->login(user, stack_env("MAILSYNC_STACK_IMAP_PASSWORD"));
    return client;
  }
  // The environment for running the executables on this test's route and database.
  EnvChanges process_env(const std::string& log_level) const {
    const nlohmann::json routes =
        nlohmann::json::array({{{"gmail_email", user_},
                                {"outlook_target_folder", route_.target_folder},
                                {"gmail_refresh_token", route_.gmail_refresh_token->reveal()},
                                {"initial_sync", "all"}}});
    return {{"MAILSYNC_DATABASE_URL", db_.url()},
            {"LOG_LEVEL", log_level},
            {"SYNC_ROUTES_JSON", routes.dump()},
            {"SYNC_ROUTES_FILE", std::nullopt}};
  }
  std::unique_ptr<imap::Client> outlook() {
    return outlook_user_.empty() ? logged_in_client(Server::kOutlook)
                                 : logged_in_client(Server::kOutlook, outlook_user_);
  }
  // The test's own Outlook mailbox instead of the shared one: provider rules act on a whole
  // mailbox (throttling one throttles every route into it).
  void use_own_outlook() {
    outlook_user_ = claim_outlook_user();
    settings_.outlook_email = outlook_user_;
    settings_.ms_refresh_token = config::Secret(mint_refresh_token(Server::kOutlook, outlook_user_),
                                                config::Secret::Source::kInline, "inline");
    route_.outlook_email = outlook_user_;
  }
  std::string seed(const std::string& bytes, const std::string& date = "") {
    append_to_gmail(
        user_, bytes,
        date.empty() ? mail::format_internaldate({std::chrono::system_clock::now(), 0}) : date);
    return util::Sha256::hex_of(bytes);
  }

  TestDatabase db_;
  std::string user_;
  std::string outlook_user_;  // set by use_own_outlook()
  config::Settings settings_;
  config::Route route_;
  dynamo::DynamoOptions dynamo_options_;
  std::unique_ptr<dynamo::DynamoClient> dynamo_;
  std::unique_ptr<sync::SyncStore> store_;
  oauth::TokenProvider tokens_{{.http = {.ca_file = stack_env("MAILSYNC_TLS_CA_FILE")}}};
  sync::ImapPool pool_{[this] {
    return imap::Client::connect(sync::imap_options(settings_, settings_.outlook_imap));
  }};
  const std::atomic<bool> never_{false};
};

}  // namespace mailsync::testing
