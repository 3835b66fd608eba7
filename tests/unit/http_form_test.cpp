#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "mailsync/http/http_client.hpp"

namespace {

TEST(FormEncode, EscapesEverythingButUnreservedCharacters) {
  EXPECT_EQ(mailsync::http::form_encode(
                {{"grant_type", "refresh_token"},
                 {"refresh_token", "1//0g-a_b.c~d+e/f=g&h i"},
                 {"scope", "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}}),
            "grant_type=refresh_token&refresh_token=1%2F%2F0g-a_b.c~d%2Be%2Ff%3Dg%26h%20i"
            "&scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All%20offline_access");
}

TEST(FormEncode, EncodesUtf8BytesAndEmptyValues) {
  EXPECT_EQ(mailsync::http::form_encode({{"name", "Entw\xc3\xbcrfe"}, {"empty", ""}}),
            "name=Entw%C3%BCrfe&empty=");
}

}  // namespace

// Issue 13: HTTP response bodies were unbounded. A server on loopback that answers 9 MiB.
TEST(HttpClient, ABodyOverTheCapIsRefusedNotHeld) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  std::thread server([listener] {
    const int client = ::accept(listener, nullptr, nullptr);
    char request[4096];
    [[maybe_unused]] const ssize_t got = ::recv(client, request, sizeof request, 0);
    const std::string body(9 << 20, 'x');
    const std::string answer =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    [[maybe_unused]] const ssize_t sent =
        ::send(client, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::close(client);
  });
  mailsync::http::HttpClient http;
  try {
    http.get("http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/big");
    ADD_FAILURE() << "a 9 MiB body was taken";
  } catch (const mailsync::http::HttpError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 8 MiB"), std::string::npos) << e.what();
  }
  server.join();
  ::close(listener);
}
