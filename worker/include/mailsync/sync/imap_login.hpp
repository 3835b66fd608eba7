#pragma once

#include <string>

#include "mailsync/imap/client.hpp"
#include "mailsync/oauth/token_provider.hpp"

namespace mailsync::sync {

// AUTHENTICATE XOAUTH2 with a cached access token; if the server refuses it, once more with a
// fresh one. A fresh token refused too throws SyncStop(kAuthRequired): a person must act.
void login_xoauth2(imap::Client& client, const std::string& user,
                   const oauth::Credential& credential, oauth::TokenProvider& tokens);

}  // namespace mailsync::sync
