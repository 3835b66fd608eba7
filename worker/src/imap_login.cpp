#include "mailsync/sync/imap_login.hpp"

#include "mailsync/sync/outcome.hpp"

namespace mailsync::sync {

void login_xoauth2(imap::Client& client, const std::string& user,
                   const oauth::Credential& credential, oauth::TokenProvider& tokens) {
  std::string token = tokens.get(credential).value;
  try {
    client.authenticate_xoauth2(user, token);
  } catch (const imap::ImapError& e) {
    if (imap::classify(e).kind != imap::ErrorClass::Kind::kAuth) throw;
    tokens.invalidate(credential, token);
    token = tokens.get(credential).value;
    try {
      client.authenticate_xoauth2(user, token);
    } catch (const imap::ImapError& again) {
      if (imap::classify(again).kind != imap::ErrorClass::Kind::kAuth) throw;
      tokens.mark_refused(credential,
                          std::string("IMAP login refused a fresh access token: ") + again.what());
      throw SyncStop(
          SyncOutcome::kAuthRequired,
          credential.label + ": IMAP login refused a fresh access token: " + again.what());
    }
  }
}

}  // namespace mailsync::sync
