// The configuration loader, table-style: what it accepts, and every problem it names at once.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include "mailsync/cli.hpp"
#include "mailsync/config/config.hpp"

namespace {

using namespace mailsync::config;

Settings defaults() {
  Settings s;
  s.outlook_email = "me@outlook.com";
  s.gmail_client_id = "client.apps.googleusercontent.com";
  s.gmail_client_secret = Secret("shh", Secret::Source::kEnv, "env:GMAIL_CLIENT_SECRET");
  return s;
}

Config parse(const std::string& json, Needs needs = Needs::kStructure) {
  Config config;
  config.routes_source = "SYNC_ROUTES_JSON";
  parse_routes_json(json, defaults(), needs, config);
  return config;
}

TEST(RoutesJson, ParsesRoutesWithDefaultsAndBuildsTheDynamoCompatibleKey) {
  const Config config = parse(R"([
    {"gmail_email": "alice@gmail.com", "outlook_target_folder": "Gmail/alice"},
    {"gmail_email": "bob@gmail.com", "outlook_email": "team@outlook.com", "outlook_target_folder": "B",
     "enabled": false, "mark_seen": true, "create_folder": false, "fallback_window_hours": 48, "initial_sync": "all"}])");
  ASSERT_TRUE(config.ok()) << config.errors.front();
  ASSERT_EQ(config.routes.size(), 2u);
  const Route& alice = config.routes[0];
  EXPECT_EQ(alice.key(), "ROUTE#alice@gmail.com#DEST#me@outlook.com#FOLDER#Gmail/alice");
  EXPECT_TRUE(alice.enabled);
  EXPECT_FALSE(alice.mark_seen);
  EXPECT_TRUE(alice.create_folder);
  EXPECT_EQ(alice.fallback_window_hours, 24);
  EXPECT_EQ(alice.initial_sync, InitialSync::kWindow);
  EXPECT_EQ(alice.gmail_client_id, "client.apps.googleusercontent.com");
  const Route& bob = config.routes[1];
  EXPECT_EQ(bob.outlook_email, "team@outlook.com");
  EXPECT_FALSE(bob.enabled);
  EXPECT_TRUE(bob.mark_seen);
  EXPECT_FALSE(bob.create_folder);
  EXPECT_EQ(bob.fallback_window_hours, 48);
  EXPECT_EQ(bob.initial_sync, InitialSync::kAll);
}

TEST(RoutesJson, NamesEveryProblemAtOnce) {
  const Config config = parse(R"([
    {"gmail_email": "a@gmail.com"},
    {"gmail_email": "b", "outlook_target_folder": "F", "enabled": "yes", "colour": "blue"},
    {"gmail_email": "c@gmail.com", "outlook_target_folder": "F", "initial_sync": "some", "fallback_window_hours": 0},
    {"gmail_email": "a@gmail.com", "outlook_target_folder": "X"},
    {"gmail_email": "a@gmail.com", "outlook_target_folder": "X"},
    7])");
  const std::vector<std::string> expected = {
      "route 1 (a@gmail.com): outlook_target_folder is missing",
      "route 2 (b): unknown option 'colour'",
      "route 2 (b): enabled must be true or false",
      "route 2 (b): gmail_email 'b' is not an email address",
      "route 3 (c@gmail.com): initial_sync 'some' is not window, all or none",
      "route 3 (c@gmail.com): fallback_window_hours must be between 1 and 8784",
      "route 5 (a@gmail.com): duplicate route ROUTE#a@gmail.com#DEST#me@outlook.com#FOLDER#X",
      "route 6: not a JSON object",
  };
  EXPECT_EQ(config.errors, expected);
}

TEST(RoutesJson, RejectsWhatIsNotANonEmptyArrayOfObjects) {
  EXPECT_EQ(parse("{").errors, std::vector<std::string>{"SYNC_ROUTES_JSON: not valid JSON"});
  EXPECT_EQ(parse("[]").errors.size(), 1u);
  EXPECT_EQ(parse(R"({"gmail_email": "a@gmail.com"})").errors.size(), 1u);
}

TEST(RoutesJson, RefusesFolderNamesThatCannotBeSentSafely) {
  EXPECT_FALSE(
      parse(R"([{"gmail_email": "a@gmail.com", "outlook_target_folder": "A\r\nB"}])").ok());
  EXPECT_FALSE(
      parse("[{\"gmail_email\": \"a@gmail.com\", \"outlook_target_folder\": \"\xff\"}]").ok());
  EXPECT_FALSE(parse(R"([{"gmail_email": "a#b@gmail.com", "outlook_target_folder": "F"}])").ok());
}

class SecretFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/mailsync-secrets.XXXXXX";
    dir_ = ::mkdtemp(dir_template);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::string dir_;
};

TEST_F(SecretFiles, ResolvesValuesEnvironmentVariablesAndFiles) {
  ::setenv("MAILSYNC_TEST_SECRET", "from-env", 1);
  const std::string path = write("token", "from-file\n", 0600);
  const auto inline_value = resolve_secret("plain", "field");
  const auto env = resolve_secret("env:MAILSYNC_TEST_SECRET", "field");
  const auto file = resolve_secret("file:" + path, "field");
  EXPECT_EQ(inline_value.secret->reveal(), "plain");
  EXPECT_EQ(env.secret->reveal(), "from-env");
  EXPECT_EQ(env.secret->reference(), "env:MAILSYNC_TEST_SECRET");
  EXPECT_EQ(file.secret->reveal(), "from-file") << "the trailing newline is not part of the secret";
  EXPECT_EQ(file.secret->file(), std::filesystem::path(path));
  EXPECT_EQ(file.warning, "");
}

TEST_F(SecretFiles, NamesUnreadableFilesAndUnsetVariablesWithoutValues) {
  ::unsetenv("MAILSYNC_TEST_UNSET");
  EXPECT_EQ(resolve_secret("env:MAILSYNC_TEST_UNSET", "MS_REFRESH_TOKEN").error,
            "MS_REFRESH_TOKEN: environment variable MAILSYNC_TEST_UNSET (from "
            "env:MAILSYNC_TEST_UNSET) is not set");
  EXPECT_NE(resolve_secret("file:" + dir_ + "/missing", "x")
                .error.find("cannot read " + dir_ + "/missing"),
            std::string::npos);
  EXPECT_NE(resolve_secret("file:" + write("empty", "\n", 0600), "x").error.find("is empty"),
            std::string::npos);
}

TEST_F(SecretFiles, WarnsAboutFilesOthersCanRead) {
  const auto loose = resolve_secret("file:" + write("loose", "t", 0644), "gmail_refresh_token");
  ASSERT_TRUE(loose.secret.has_value());
  EXPECT_NE(loose.warning.find("readable by others (mode 0644); chmod 600"), std::string::npos)
      << loose.warning;
}

TEST_F(SecretFiles, WritesSecretsAtomicallyWithMode0600) {
  const std::string path = write("rotating", "old", 0644);
  write_secret_file(path, "new-token");
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "new-token");
  struct stat info {};
  ::stat(path.c_str(), &info);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1)
      << "no temporary file left behind";
}

TEST_F(SecretFiles, RefusesAFifoADirectoryAndAnOversizedFileWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO with no writer would block this thread for ever; the test would hang.
  EXPECT_NE(resolve_secret("file:" + fifo, "x").error.find("not a regular file"),
            std::string::npos);
  EXPECT_NE(resolve_secret("file:" + dir_, "x").error.find("not a regular file"),
            std::string::npos);
  const auto big =
      resolve_secret("file:" + write("big", std::string(kMaxSecretFileBytes + 1, 'a'), 0600), "x");
  EXPECT_FALSE(big.secret.has_value());
  EXPECT_NE(big.error.find("larger than 65536 bytes"), std::string::npos) << big.error;
  EXPECT_TRUE(
      resolve_secret("file:" + write("max", std::string(kMaxSecretFileBytes, 'a'), 0600), "x")
          .secret.has_value());
}

TEST_F(SecretFiles, TheWriteBackFollowsNoLinkPlantedAtItsTemporaryName) {
  // Before: the temporary file was "<path>.tmp-<pid>", opened with O_TRUNC and following links, so
  // anyone who could write the directory could point that name at another file of ours.
  const std::string victim = write("victim", "keep me", 0600);
  const std::string path = write("token", "old", 0600);
  const std::string planted = path + ".tmp-" + std::to_string(::getpid());
  ASSERT_EQ(::symlink(victim.c_str(), planted.c_str()), 0);
  write_secret_file(path, "new-token");
  std::string content;
  std::getline(std::ifstream(victim), content);
  EXPECT_EQ(content, "keep me");
  std::getline(std::ifstream(path), content);
  EXPECT_EQ(content, "new-token");
}

TEST_F(SecretFiles, ARotationStoresOnlyOverTheTokenItRotatedFrom) {
  const std::string path = write("token", "t0\n", 0600);
  EXPECT_EQ(write_secret_file(path, "t1", "t0"), SecretWrite::kWritten);
  // A second process that also started from t0 finds t1 there and leaves it.
  EXPECT_EQ(write_secret_file(path, "t2", "t0"), SecretWrite::kKeptOther);
  std::string content;
  std::getline(std::ifstream(path), content);
  EXPECT_EQ(content, "t1");
  EXPECT_EQ(write_secret_file(path, "t1", "t0"), SecretWrite::kWritten) << "same value: harmless";
}

TEST_F(SecretFiles, WritersOfOneFileTakeTurns) {
  const std::string path = write("token", "t0\n", 0600);
  const int held = ::open(path.c_str(), O_RDONLY);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    write_secret_file(path, "t1", "t0");
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(done) << "wrote while another writer held the file";
  ::flock(held, LOCK_UN);
  ::close(held);
  writer.join();
  std::string content;
  std::getline(std::ifstream(path), content);
  EXPECT_EQ(content, "t1");
}

TEST_F(SecretFiles, ParsingWithSecretsResolvesEveryRouteSecretAndNamesFailures) {
  const std::string token = write("alice", "alice-token", 0600);
  const Config config = parse(R"([
    {"gmail_email": "alice@gmail.com", "outlook_target_folder": "A", "gmail_refresh_token": "file:)" +
                                  token + R"("},
    {"gmail_email": "bob@gmail.com", "outlook_target_folder": "B", "gmail_refresh_token": "file:/nonexistent/bob"},
    {"gmail_email": "carol@gmail.com", "outlook_target_folder": "C"}])",
                              Needs::kSecrets);
  ASSERT_EQ(config.errors.size(), 2u);
  EXPECT_NE(config.errors[0].find(
                "route 2 (bob@gmail.com): gmail_refresh_token: cannot read /nonexistent/bob"),
            std::string::npos);
  EXPECT_EQ(config.errors[1], "route 3 (carol@gmail.com): gmail_refresh_token is missing");
  EXPECT_EQ(config.routes[0].gmail_refresh_token->reveal(), "alice-token");
  EXPECT_EQ(config.routes[0].gmail_client_secret->reference(), "env:GMAIL_CLIENT_SECRET");
}

TEST(TokenUrls, AreHttpsOrLoopbackHttp) {
  EXPECT_TRUE(acceptable_token_url("https://oauth2.googleapis.com/token"));
  EXPECT_TRUE(acceptable_token_url("http://127.0.0.1:8080/google/token"));
  EXPECT_TRUE(acceptable_token_url("http://localhost:8080/token"));
  EXPECT_FALSE(acceptable_token_url("http://oauth2.googleapis.com/token"));
  EXPECT_FALSE(acceptable_token_url("http://127.0.0.1.evil.com/token"));
  EXPECT_FALSE(acceptable_token_url("ftp://x"));
  // Issue 13: a user part made the host the part after '@'.
  EXPECT_FALSE(acceptable_token_url("http://localhost:x@evil.example/token"));
  EXPECT_FALSE(acceptable_token_url("http://127.0.0.1@evil.example/token"));
  EXPECT_FALSE(acceptable_token_url("https://user:pass@oauth2.googleapis.com/token"));
  EXPECT_TRUE(acceptable_token_url("http://[::1]:8080/token"));
  EXPECT_TRUE(acceptable_token_url("http://localhost/token?x=a@b"));
  EXPECT_FALSE(acceptable_token_url("https://"));
}

}  // namespace

// ---- AWS Secrets Manager references and the merged environment (pure parts) --------------------

TEST(SecretStoreRefs, SplitAtTheLastHashSoAnArnIsAnId) {
  const auto plain = parse_store_ref("aws-sm:mailsync/prod#MS_REFRESH_TOKEN");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->id, "mailsync/prod");
  EXPECT_EQ(plain->key, "MS_REFRESH_TOKEN");
  const auto arn = parse_store_ref(
      "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:mailsync-AbCdEf#K");
  ASSERT_TRUE(arn);
  EXPECT_EQ(arn->id, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mailsync-AbCdEf");
  EXPECT_EQ(arn->key, "K");
  for (const char* bad : {"aws-sm:", "aws-sm:id", "aws-sm:#KEY", "aws-sm:id#", "env:X#Y"})
    EXPECT_FALSE(parse_store_ref(bad)) << bad;
}

TEST(SecretStoreRefs, AMalformedReferenceIsAStructureErrorWithoutReadingIt) {
  Config config;
  config.routes_source = "test";
  parse_routes_json(
      R"([{"gmail_email": "a@gmail.com", "outlook_email": "me@outlook.com",
           "outlook_target_folder": "F", "gmail_client_id": "c",
           "gmail_refresh_token": "aws-sm:no-key"}])",
      {}, Needs::kStructure, config);
  ASSERT_EQ(config.errors.size(), 1U);
  EXPECT_NE(config.errors[0].find("'aws-sm:no-key' is not aws-sm:SECRET_ID#KEY"), std::string::npos)
      << config.errors[0];
}

// A store in memory: what resolve_secret and write_back ask of Secrets Manager.
class MemoryStore : public SecretStore {
 public:
  std::string read(const std::string& id, const std::string& key) override {
    const auto found = values.find(id + "#" + key);
    if (found == values.end()) throw std::runtime_error("secret " + id + " has no key " + key);
    return found->second;
  }
  SecretWrite write(const std::string& id, const std::string& key, std::string_view value,
                    std::optional<std::string_view> expected) override {
    std::string& held = values[id + "#" + key];
    if (expected && held != *expected && held != value) return SecretWrite::kKeptOther;
    held = std::string(value);
    return SecretWrite::kWritten;
  }
  std::string describe() const override { return "memory"; }
  std::map<std::string, std::string> values;
};

TEST(SecretStoreRefs, MergedVariablesLoseToExplicitOnesAndRememberTheirSecret) {
  auto store = std::make_shared<MemoryStore>();
  store->values["s#TOKEN"] = "from-secret";
  install_secret_store(store);
  ::setenv("MAILSYNC_TEST_EXPLICIT", "explicit", 1);
  mailsync::cli::set_environment_overlay(
      {{"MAILSYNC_TEST_EXPLICIT", {"merged", "aws-sm:s#MAILSYNC_TEST_EXPLICIT"}},
       {"MAILSYNC_TEST_MERGED", {"from-secret", "aws-sm:s#TOKEN"}}});
  EXPECT_EQ(mailsync::cli::env("MAILSYNC_TEST_EXPLICIT"), "explicit");
  EXPECT_FALSE(mailsync::cli::env_origin("MAILSYNC_TEST_EXPLICIT"));
  EXPECT_EQ(mailsync::cli::env("MAILSYNC_TEST_MERGED"), "from-secret");

  // env:NAME of a merged variable is a Secrets Manager secret: a rotation goes back there.
  const SecretResolution merged = resolve_secret("env:MAILSYNC_TEST_MERGED", "field");
  ASSERT_TRUE(merged.secret) << merged.error;
  EXPECT_EQ(merged.secret->source(), Secret::Source::kAwsSecretsManager);
  EXPECT_EQ(merged.secret->reference(), "aws-sm:s#TOKEN");
  EXPECT_EQ(write_back(*merged.secret, "rotated", "from-secret"), SecretWrite::kWritten);
  EXPECT_EQ(store->values["s#TOKEN"], "rotated");
  EXPECT_EQ(write_back(*merged.secret, "mine", "from-secret"), SecretWrite::kKeptOther);

  const SecretResolution missing = resolve_secret("aws-sm:s#NOPE", "field");
  EXPECT_FALSE(missing.secret);
  EXPECT_EQ(missing.error, "field: secret s has no key NOPE");
  const SecretResolution inline_value = resolve_secret("plain", "field");
  EXPECT_FALSE(write_back(*inline_value.secret, "x", std::nullopt)) << "nowhere to write";

  mailsync::cli::set_environment_overlay({});
  install_secret_store(nullptr);
  ::unsetenv("MAILSYNC_TEST_EXPLICIT");
}
