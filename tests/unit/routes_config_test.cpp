#include <gtest/gtest.h>

#include "mailsync/config/routes.hpp"

namespace {

using mailsync::config::parse_routes_json;

TEST(RoutesJson, ParsesRoutesAndBuildsTheDynamoCompatibleKey) {
  const auto load = parse_routes_json(
      R"([{"gmail_email": "alice@gmail.com", "outlook_target_folder": "Gmail/alice"},
          {"gmail_email": "bob@gmail.com", "outlook_email": "team@outlook.com", "outlook_target_folder": "B", "enabled": false}])",
      "me@outlook.com");
  ASSERT_TRUE(load.ok()) << load.errors.front();
  ASSERT_EQ(load.routes.size(), 2u);
  EXPECT_EQ(load.routes[0].key(), "ROUTE#alice@gmail.com#DEST#me@outlook.com#FOLDER#Gmail/alice");
  EXPECT_EQ(load.routes[1].outlook_email, "team@outlook.com");
  EXPECT_FALSE(load.routes[1].enabled);
}

TEST(RoutesJson, NamesEveryProblemAtOnce) {
  const auto load = parse_routes_json(
      R"([{"gmail_email": "a@gmail.com"}, {"gmail_email": "b", "outlook_target_folder": "F", "enabled": "yes"},
          {"gmail_email": "a@gmail.com", "outlook_target_folder": "F"}, {"gmail_email": "a@gmail.com", "outlook_target_folder": "F"}])",
      "me@outlook.com");
  ASSERT_EQ(load.errors.size(), 4u);
  EXPECT_EQ(load.errors[0], "route 1 (a@gmail.com): outlook_target_folder is missing");
  EXPECT_EQ(load.errors[1], "route 2: enabled must be true or false");
  EXPECT_EQ(load.errors[2], "route 2 (b): gmail_email 'b' is not an email address");
  EXPECT_EQ(
      load.errors[3],
      "route 4 (a@gmail.com): duplicate route ROUTE#a@gmail.com#DEST#me@outlook.com#FOLDER#F");
}

TEST(RoutesJson, RequiresAnOutlookAddressFromTheRouteOrTheDefault) {
  const auto load =
      parse_routes_json(R"([{"gmail_email": "a@gmail.com", "outlook_target_folder": "F"}])", "");
  ASSERT_EQ(load.errors.size(), 1u);
  EXPECT_NE(load.errors[0].find("outlook_email '' is not an email address"), std::string::npos);
}

TEST(RoutesJson, RejectsWhatIsNotAnArrayOfObjects) {
  EXPECT_EQ(parse_routes_json("{", "").errors.front(), "routes are not valid JSON");
  EXPECT_EQ(parse_routes_json(R"({"gmail_email": "a@gmail.com"})", "").errors.front(),
            "routes must be a JSON array of objects");
}

TEST(RoutesJson, RefusesAHashInAnAddressBecauseItWouldBreakTheKey) {
  const auto load = parse_routes_json(
      R"([{"gmail_email": "a#b@gmail.com", "outlook_target_folder": "F"}])", "me@outlook.com");
  EXPECT_FALSE(load.ok());
}

}  // namespace
