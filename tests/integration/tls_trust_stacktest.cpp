// Every TLS client in the process, IMAP (net::TlsStream) and HTTPS (http::HttpClient through
// libcurl, or its own HTTP/1.1 on net::TlsStream for AWS-signed POSTs), verifies against one trust
// store parsed once (net::shared_trust_store): the system store plus MAILSYNC_TLS_CA_FILE. Checked
// against an HTTPS server holding the stack's certificate: trusted with the stack's CA file,
// refused by the system store alone, and a CA file that cannot be read is named in the error.

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <thread>

#include "mailsync/http/http_client.hpp"
#include "mailsync/net/tls_stream.hpp"
#include "mailsync/net/trust_store.hpp"
#include "support/process.hpp"

namespace {

using mailsync::testing::stack_env;

constexpr const char* kServer = R"py(
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"trusted"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        signed = self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential=")
        body = b"signed " + self.rfile.read(length) if signed else b"unsigned"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], file=sys.stderr, flush=True)
server.serve_forever()
)py";

// An HTTPS server on loopback with the stack's server certificate (signed by its CA).
class TlsTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = stack_env("MAILSYNC_TLS_CA_FILE");
    const auto dir = std::filesystem::path(ca_file_).parent_path();
    server_ = std::make_unique<mailsync::testing::ChildProcess>(
        std::vector<std::string>{"/usr/bin/python3", "-c", kServer, (dir / "server.pem").string(),
                                 (dir / "server.key").string()});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      const std::string said = server_->read_err();
      if (said.find('\n') != std::string::npos) {
        ASSERT_TRUE(std::isdigit(static_cast<unsigned char>(said[0]))) << said;
        port_ = static_cast<uint16_t>(std::stoi(said));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_NE(port_, 0) << "the HTTPS server did not start: " << server_->read_err();
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/"; }

  std::string ca_file_;
  std::unique_ptr<mailsync::testing::ChildProcess> server_;
  uint16_t port_ = 0;
};

TEST_F(TlsTrust, OneStorePerCaFileIsSharedByEveryCaller) {
  X509_STORE* first = mailsync::net::shared_trust_store(ca_file_);
  X509_STORE* second = mailsync::net::shared_trust_store(ca_file_);
  X509_STORE* system = mailsync::net::shared_trust_store("");
  EXPECT_EQ(first, second) << "the CA file was parsed again";
  EXPECT_NE(first, system);
  X509_STORE_free(first);
  X509_STORE_free(second);
  X509_STORE_free(system);
}

TEST_F(TlsTrust, HttpsIsTrustedWithTheCaFileAndRefusedByTheSystemStoreAlone) {
  for (int client = 0; client < 2; ++client) {  // the second client gets the store already parsed
    mailsync::http::HttpClient http({.ca_file = ca_file_});
    const auto response = http.get(url(), {});
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "trusted");
  }
  try {
    mailsync::http::HttpClient(mailsync::http::HttpOptions{}).get(url(), {});
    FAIL() << "the system store trusted the stack's private CA";
  } catch (const mailsync::http::HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
    EXPECT_FALSE(e.retryable());
  }
}

// AWS-signed POSTs go over mailsync's own HTTP/1.1 on net::TlsStream (HttpOptions::own_http1):
// the same trust, kept alive.
TEST_F(TlsTrust, AwsSignedPostsOverTheOwnHttpPathVerifyTheSameWay) {
  const mailsync::http::AwsSigV4 signing{"aws:amz:eu-west-1:dynamodb", "AKIDEXAMPLE", "secret", ""};
  mailsync::http::HttpClient http({.ca_file = ca_file_});
  for (int request = 0; request < 2; ++request) {
    const auto response = http.post(url(), "application/x-amz-json-1.0", "{}", {}, &signing);
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "signed {}");
  }
  try {
    mailsync::http::HttpClient(mailsync::http::HttpOptions{})
        .post(url(), "application/x-amz-json-1.0", "{}", {}, &signing);
    FAIL() << "the system store trusted the stack's private CA";
  } catch (const mailsync::http::HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
    EXPECT_FALSE(e.retryable());
  }
}

TEST_F(TlsTrust, TlsStreamsVerifyWithTheSameStore) {
  mailsync::net::TlsOptions options{.ca_file = ca_file_,
                                    .connect_timeout = std::chrono::seconds(10),
                                    .io_timeout = std::chrono::seconds(10)};
  for (int connection = 0; connection < 2; ++connection)
    EXPECT_NO_THROW(mailsync::net::TlsStream::connect("127.0.0.1", port_, options));
  options.ca_file.clear();
  try {
    mailsync::net::TlsStream::connect("127.0.0.1", port_, options);
    FAIL() << "the system store trusted the stack's private CA";
  } catch (const mailsync::net::TransportError& e) {
    EXPECT_EQ(e.kind(), mailsync::net::TransportErrorKind::kCertificate) << e.what();
  }
}

TEST_F(TlsTrust, ACaFileThatCannotBeReadIsNamedAndNotRemembered) {
  const auto missing = std::filesystem::temp_directory_path() / "mailsync-no-such-ca.pem";
  std::filesystem::remove(missing);
  try {
    mailsync::http::HttpClient({.ca_file = missing.string()}).get(url(), {});
    FAIL() << "a missing CA file was accepted";
  } catch (const mailsync::http::HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot load CA file " + missing.string()),
              std::string::npos)
        << e.what();
  }
  mailsync::net::TlsOptions options{.ca_file = missing.string(),
                                    .connect_timeout = std::chrono::seconds(10)};
  EXPECT_THROW(mailsync::net::TlsStream::connect("127.0.0.1", port_, options),
               mailsync::net::TransportError);

  std::filesystem::copy_file(ca_file_, missing);  // put right: read by the next connection
  const auto response = mailsync::http::HttpClient({.ca_file = missing.string()}).get(url(), {});
  EXPECT_EQ(response.body, "trusted");
  EXPECT_NO_THROW(mailsync::net::TlsStream::connect("127.0.0.1", port_, options));
  std::filesystem::remove(missing);
}

}  // namespace
