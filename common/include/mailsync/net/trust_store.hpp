#pragma once

#include <openssl/types.h>

#include <string>

namespace mailsync::net {

// The certificates a TLS client trusts: OpenSSL's default store (its CA file and hashed directory;
// SSL_CERT_FILE and SSL_CERT_DIR honoured) plus `ca_file` (MAILSYNC_TLS_CA_FILE) when not empty.
// Parsed once per process and `ca_file`, then shared by every connection, IMAP and HTTPS alike:
// OpenSSL 3.0 spends milliseconds of CPU decoding Debian's ~140-certificate bundle, and loading it
// per connection made TLS setup most of an idle route job's CPU (bench/fleet: see README). A CA
// file changed on disk is read again only by a new process.
//
// Returns a new reference: hand it to SSL_CTX_set_cert_store, or free it with X509_STORE_free.
// Throws TransportError (kCertificate) naming the file when `ca_file` cannot be loaded; a failure
// is not remembered, so a file put right is read by the next call.
X509_STORE* shared_trust_store(const std::string& ca_file);

}  // namespace mailsync::net
