// mailsync's side of bench/imap: seeds a folder with N messages (pipelined APPEND) and fetches
// them all with one streaming UID FETCH, hashing every body as it arrives (as the sync does).
//   imap_bench seed FOLDER COUNT SIZE [FIRST]   prints {"appended": N, "seconds": s}
//     SIZE is bytes, or MIN-MAX for sizes spread over that range (the same for the same index);
//     FIRST numbers the Message-IDs <bench-FIRST@example.com> on (0), so seeds can be added up
//   imap_bench fetch FOLDER               prints {"messages": N, "bytes": B, "seconds": s}
// Connection from the local stack's env: OUTLOOK_IMAP_HOST/PORT, MAILSYNC_TLS_CA_FILE, and an
// access token in BENCH_ACCESS_TOKEN for BENCH_USER.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "mailsync/imap/client.hpp"
#include "mailsync/util/sha256.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    std::fprintf(stderr, "imap_bench: %s is not set\n", name);
    std::exit(2);
  }
  return value;
}

std::unique_ptr<mailsync::imap::Client> connect() {
  mailsync::imap::ClientOptions options;
  options.host = env("BENCH_IMAP_HOST");
  options.port = static_cast<uint16_t>(std::stoi(env("BENCH_IMAP_PORT")));
  options.tls.ca_file = env("MAILSYNC_TLS_CA_FILE");
  auto client = mailsync::imap::Client::connect(options);
  client->authenticate_xoauth2(env("BENCH_USER"), env("BENCH_ACCESS_TOKEN"));
  return client;
}

class HashingSink : public mailsync::imap::FetchSink {
 public:
  void body_begin(uint32_t seq, uint64_t) override { partial_[seq] = mailsync::util::Sha256(); }
  void body_data(uint32_t seq, std::string_view bytes) override {
    partial_[seq].update(bytes);
    bytes_ += bytes.size();
  }
  void fetched(const mailsync::imap::FetchData& data) override {
    const auto found = partial_.find(data.seq);
    if (!data.body_section || found == partial_.end()) return;
    found->second.finish();
    partial_.erase(found);
    ++messages_;
  }
  uint64_t bytes_ = 0, messages_ = 0;

 private:
  std::map<uint32_t, mailsync::util::Sha256> partial_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: imap_bench seed FOLDER COUNT SIZE|MIN-MAX [FIRST] | fetch FOLDER\n");
    return 2;
  }
  const std::string mode = argv[1], folder = argv[2];
  auto client = connect();
  const auto start = Clock::now();
  if (mode == "seed" && (argc == 5 || argc == 6)) {
    const int count = std::atoi(argv[3]);
    const std::string sizes = argv[4];
    const size_t dash = sizes.find('-');
    const auto low = static_cast<size_t>(std::atol(sizes.substr(0, dash).c_str()));
    const auto high =
        dash == std::string::npos ? low : static_cast<size_t>(std::atol(sizes.c_str() + dash + 1));
    const long first = argc == 6 ? std::atol(argv[5]) : 0;
    client->create(folder);
    std::vector<std::string> bodies;
    for (int i = 0; i < count; ++i) {
      const long n = first + i;
      // Knuth's multiplicative hash of the index: sizes spread evenly, the same on every run.
      const uint64_t spread = (static_cast<uint64_t>(n) * 2654435761u) % 1000003u;
      const size_t size = low + (high > low ? spread % (high - low + 1) : 0);
      std::string m = "Message-ID: <bench-" + std::to_string(n) +
                      "@example.com>\r\nSubject: bench " + std::to_string(n) + "\r\n\r\n";
      while (m.size() + 80 < size) m += std::string(76, static_cast<char>('a' + n % 26)) + "\r\n";
      bodies.push_back(std::move(m));
    }
    std::vector<mailsync::imap::AppendMessage> batch;
    for (const auto& b : bodies) batch.push_back({b});
    const auto results = client->append_many(folder, batch);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"appended\": %zu, \"seconds\": %.3f}\n", results.size(), seconds);
  } else if (mode == "fetch") {
    client->examine(folder);
    HashingSink sink;
    client->uid_fetch("1:*", "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[])", sink);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"messages\": %llu, \"bytes\": %llu, \"seconds\": %.4f}\n",
                static_cast<unsigned long long>(sink.messages_),
                static_cast<unsigned long long>(sink.bytes_), seconds);
  } else {
    std::fprintf(stderr,
                 "usage: imap_bench seed FOLDER COUNT SIZE|MIN-MAX [FIRST] | fetch FOLDER\n");
    return 2;
  }
  client->logout();
  return 0;
}
