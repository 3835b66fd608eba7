// The log format operators parse: one JSON object per line with the fields of mailsync/log.hpp.

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "mailsync/log.hpp"

namespace {

using namespace mailsync;

class LogTest : public ::testing::Test {
 protected:
  void use(LogFormat format) {
    out_.str("");
    init_logging("mailsync-test", format, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
  }
  void TearDown() override {
    init_logging("mailsync-test", LogFormat::kText,
                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }

  std::vector<nlohmann::json> lines() const {
    std::vector<nlohmann::json> parsed;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) {
      EXPECT_NO_THROW(parsed.push_back(nlohmann::json::parse(line))) << line;
    }
    return parsed;
  }

  std::ostringstream out_;
};

TEST_F(LogTest, EveryLineIsOneJsonObjectWithTheRequiredFields) {
  use(LogFormat::kJson);
  spdlog::info("worker started");
  spdlog::warn("something {}", 42);
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 2u);
  for (const auto& line : parsed) {
    for (const char* field : {"ts", "level", "msg", "service"})
      EXPECT_TRUE(line.contains(field)) << field << " missing in " << line;
    EXPECT_EQ(line["service"], "mailsync-test");
    EXPECT_FALSE(line.contains("job_id")) << "no job, no job fields";
    EXPECT_TRUE(line["ts"].get<std::string>().ends_with("Z")) << line["ts"];
    EXPECT_EQ(line["ts"].get<std::string>().size(), std::string("2026-11-21T15:27:28.123Z").size());
  }
  EXPECT_EQ(parsed[0]["level"], "info");
  EXPECT_EQ(parsed[1]["level"], "warn");
  EXPECT_EQ(parsed[1]["msg"], "something 42");
}

TEST_F(LogTest, QuotesControlCharactersAndBytesThatAreNotUtf8StayOneValidLine) {
  use(LogFormat::kJson);
  spdlog::error("server said \"NO\"\r\n\ttab\\ and \x01 and \xff\xfe bad bytes, é kept");
  const std::string raw = out_.str();
  EXPECT_EQ(std::count(raw.begin(), raw.end(), '\n'), 1) << raw;
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 1u);
  const std::string msg = parsed[0]["msg"];
  EXPECT_NE(msg.find("server said \"NO\"\r\n\ttab\\ and \x01 and"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos) << "invalid bytes become U+FFFD";
  EXPECT_NE(msg.find("é kept"), std::string::npos);
  EXPECT_EQ(parsed[0]["level"], "error");
}

TEST_F(LogTest, AJobsContextTagsItsLinesAndComesOffAfterwards) {
  use(LogFormat::kJson);
  {
    const log::ContextScope job({"3fa1c2", 12, ""});
    spdlog::info("claimed");
    {
      const log::ContextScope route({"", 0, "ROUTE#a@gmail.com#DEST#me@outlook.com#FOLDER#F"});
      spdlog::info("inside the route");
    }
    spdlog::info("route gone");
  }
  spdlog::info("job gone");
  std::thread([] { spdlog::info("other thread"); }).join();
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 5u);
  EXPECT_EQ(parsed[0]["run_id"], "3fa1c2");
  EXPECT_EQ(parsed[0]["job_id"], 12);
  EXPECT_FALSE(parsed[0].contains("route"));
  EXPECT_EQ(parsed[1]["run_id"], "3fa1c2") << "an inner scope keeps what it does not set";
  EXPECT_EQ(parsed[1]["job_id"], 12);
  EXPECT_EQ(parsed[1]["route"], "ROUTE#a@gmail.com#DEST#me@outlook.com#FOLDER#F");
  EXPECT_FALSE(parsed[2].contains("route"));
  EXPECT_EQ(parsed[2]["job_id"], 12);
  EXPECT_FALSE(parsed[3].contains("job_id"));
  EXPECT_FALSE(parsed[4].contains("run_id")) << "context is per thread";
}

TEST_F(LogTest, ASummaryLineCarriesItsCountsAsFields) {
  use(LogFormat::kJson);
  const log::ContextScope job({"r1", 7, "ROUTE#x"});
  log::event(spdlog::level::info, "route_sync done",
             {{"appended", 12}, {"bytes", 60000}, {"outcome", "succeeded"}, {"msg", "ignored"}});
  spdlog::info("next line has no counts");
  const auto parsed = lines();
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0]["appended"], 12);
  EXPECT_EQ(parsed[0]["bytes"], 60000);
  EXPECT_EQ(parsed[0]["outcome"], "succeeded");
  EXPECT_EQ(parsed[0]["msg"], "route_sync done") << "a field never replaces a required one";
  EXPECT_EQ(parsed[0]["job_id"], 7);
  EXPECT_FALSE(parsed[1].contains("appended"));
}

TEST_F(LogTest, TextFormatIsOneReadableLineWithTheSameInformation) {
  use(LogFormat::kText);
  const log::ContextScope job({"r1", 7, "ROUTE#x"});
  log::event(spdlog::level::warn, "route_sync retry", {{"appended", 3}, {"outcome", "retry"}});
  const std::string line = out_.str();
  EXPECT_EQ(line.find('{'), std::string::npos) << line;
  EXPECT_NE(
      line.find(" mailsync-test warn [job 7 ROUTE#x] route_sync retry appended=3 outcome=retry\n"),
      std::string::npos)
      << line;
}

TEST_F(LogTest, LevelAndFormatComeFromTheEnvironmentAndBadValuesAreNamed) {
  ::setenv("LOG_FORMAT", "yaml", 1);
  auto error = init_logging("mailsync-test");
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("LOG_FORMAT=yaml"), std::string::npos) << *error;
  ::setenv("LOG_FORMAT", "TEXT", 1);
  ::setenv("LOG_LEVEL", "loud", 1);
  error = init_logging("mailsync-test");
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("LOG_LEVEL=loud"), std::string::npos) << *error;
  ::setenv("LOG_LEVEL", "Warning", 1);
  EXPECT_FALSE(init_logging("mailsync-test").has_value());
  EXPECT_EQ(spdlog::get_level(), spdlog::level::warn);
  ::unsetenv("LOG_FORMAT");
  ::unsetenv("LOG_LEVEL");
  spdlog::set_level(spdlog::level::info);
}

}  // namespace
