#include "support/corpus.hpp"

#include <random>

namespace mailsync::testing {

std::string message(const std::string& headers, const std::string& body) {
  return headers + "\r\n" + body;
}

std::vector<std::pair<std::string, std::string>> tricky_messages() {
  std::string eight_bit_body;
  for (int i = 0; i < 4000; ++i) {
    const int c = 0x20 + (i * 37) % 0xdf;
    eight_bit_body += static_cast<char>(c == 0x7f ? 'x' : c);
    if (i % 70 == 69) eight_bit_body += "\r\n";
  }
  std::string attachment;
  std::mt19937 rng(42);
  std::string raw(30000, '\0');
  for (char& c : raw) c = static_cast<char>(rng());
  static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < raw.size(); ++i) {
    attachment += kB64[static_cast<unsigned char>(raw[i]) % 64];
    if (i % 76 == 75) attachment += "\r\n";
  }
  return {
      {"8-bit headers",
       message("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9f"
               "e aus K\xc3\xb6ln \xe2\x9c\x93\r\n"
               "X-Raw: \xe4\xf6\xfc\xff\r\nMessage-ID: <8bit@example.com>\r\n",
               "Hallo \xc3\xa4\xc3\xb6\xc3\xbc\r\n")},
      {"20 KB line", message("Message-ID: <long-line@example.com>\r\nSubject: long\r\n",
                             std::string(20000, 'L') + "\r\n")},
      {"long folded header", message(
                                 "Message-ID:\r\n <folded@example.com>\r\nReferences: " +
                                     [] {
                                       std::string refs;
                                       for (int i = 0; i < 200; ++i)
                                         refs += "<r" + std::to_string(i) + "@x>\r\n ";
                                       return refs;
                                     }() +
                                     "<end@x>\r\n",
                                 "body\r\n")},
      {"binary attachment",
       message("Message-ID: <attach@example.com>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=b\r\n",
               "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
               "base64\r\n\r\n" +
                   attachment + "\r\n--b--\r\n")},
      {"8-bit body",
       message("Message-ID: <8bit-body@example.com>\r\nContent-Transfer-Encoding: 8bit\r\n",
               eight_bit_body)},
      {"no message-id, bare CR, no final CRLF", message("Subject: x\r\n", "a\rb\r\nlast line")},
      {"headers only", "Message-ID: <headers-only@example.com>\r\nSubject: nothing else\r\n"},
  };
}

}  // namespace mailsync::testing
