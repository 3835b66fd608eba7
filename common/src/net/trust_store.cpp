#include "mailsync/net/trust_store.hpp"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <map>
#include <mutex>

#include "mailsync/net/tls_stream.hpp"

namespace mailsync::net {

X509_STORE* shared_trust_store(const std::string& ca_file) {
  static std::mutex mutex;
  // Never destroyed: the stores live as long as the process, reachable for the leak checker.
  static auto* stores = new std::map<std::string, X509_STORE*>;
  std::lock_guard lock(mutex);  // held while parsing: concurrent first connections parse once
  X509_STORE*& slot = (*stores)[ca_file];
  if (slot == nullptr) {
    ERR_clear_error();
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr || X509_STORE_set_default_paths(store) != 1 ||
        (!ca_file.empty() && X509_STORE_load_file(store, ca_file.c_str()) != 1)) {
      X509_STORE_free(store);
      stores->erase(ca_file);
      char detail[256] = "no detail from OpenSSL";
      if (const unsigned long code = ERR_get_error())
        ERR_error_string_n(code, detail, sizeof detail);
      ERR_clear_error();
      throw TransportError(
          TransportErrorKind::kCertificate,
          (ca_file.empty() ? "cannot load the system CA store" : "cannot load CA file " + ca_file) +
              ": " + detail);
    }
    slot = store;
  }
  X509_STORE_up_ref(slot);
  return slot;
}

}  // namespace mailsync::net
