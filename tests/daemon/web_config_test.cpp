// The exporter-toolkit web configuration: parsing (every rule exporter-toolkit enforces), the
// TLS context built from real certificates made by openssl, and the basic-auth check.
#include <catch2/catch.hpp>

#include "daemon/web_config.hpp"
#include "tests/support/test_pki.hpp"

namespace {

using substrate::parse_web_config;
using substrate::WebSecurity;

std::string error_of(const std::string& yaml) {
  auto parsed = parse_web_config(yaml, "web.yml", "/etc/substrated");
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().kind == substrate::ErrorKind::invalid_argument);
  return parsed.error().message;
}

std::string basic(const std::string& credentials) {
  // Standard base64 of "user:password" pairs used below (RFC 4648 alphabet, padded).
  static const std::map<std::string, std::string> encoded = {
      {"prometheus:s3cret", "cHJvbWV0aGV1czpzM2NyZXQ="},
      {"prometheus:wrong", "cHJvbWV0aGV1czp3cm9uZw=="},
      {"nobody:s3cret", "bm9ib2R5OnMzY3JldA=="},
  };
  return "Basic " + encoded.at(credentials);
}

}  // namespace

TEST_CASE("web config: the exporter-toolkit layout parses; relative files resolve to the file's directory", "[unit]") {
  const std::string hash = "$2y$10$X0h1m6sOBlqUy4p6lSuK0uXHhiHn0R3Gx7PE2u8nS9ZTIb3gwhZvW";
  auto parsed = parse_web_config(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: /abs/server.key\n"
      "  client_ca_file: ca.crt\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  min_version: TLS13\n"
      "basic_auth_users:\n"
      "  prometheus: " +
          hash + "\n",
      "web.yml", "/etc/substrated");
  REQUIRE(parsed);
  REQUIRE(parsed->tls);
  CHECK(parsed->tls->cert_file == "/etc/substrated/server.crt");
  CHECK(parsed->tls->key_file == "/abs/server.key");
  CHECK(parsed->tls->client_ca_file == "/etc/substrated/ca.crt");
  CHECK(parsed->tls->client_auth_type == "RequireAndVerifyClientCert");
  CHECK(parsed->tls->min_version == "TLS13");
  CHECK(parsed->basic_auth_users.at("prometheus") == hash);

  auto empty = parse_web_config("", "web.yml", ".");
  REQUIRE(empty);
  CHECK_FALSE(empty->tls);
  CHECK(empty->basic_auth_users.empty());
  auto tls_defaults = parse_web_config("tls_server_config:\n  cert_file: a\n  key_file: b\n", "web.yml", ".");
  REQUIRE(tls_defaults);
  CHECK(tls_defaults->tls->min_version == "TLS12");
  CHECK(tls_defaults->tls->client_auth_type == "NoClientCert");
}

TEST_CASE("web config: every mistake is one line naming file, line and key", "[unit]") {
  const std::string tls = "tls_server_config:\n  cert_file: a\n  key_file: b\n";
  CHECK_THAT(error_of("tls_config:\n  cert_file: a\n"),
             Catch::StartsWith("web.yml:1:1: key 'tls_config': unknown key"));
  CHECK_THAT(error_of(tls + "  min_version: TLS14\n"),
             Catch::Contains("key 'tls_server_config.min_version': expected TLS10, TLS11, TLS12 or TLS13"));
  CHECK_THAT(error_of(tls + "  client_auth_type: Always\n"),
             Catch::Contains("key 'tls_server_config.client_auth_type': expected one of: NoClientCert"));
  CHECK_THAT(error_of(tls + "  client_ca_file: ca.crt\n"),
             Catch::Contains("a client CA without a client_auth_type that checks client certificates"));
  CHECK_THAT(error_of(tls + "  client_auth_type: RequireAndVerifyClientCert\n"),
             Catch::Contains("RequireAndVerifyClientCert needs client_ca_file"));
  CHECK_THAT(error_of("tls_server_config:\n  cert_file: a\n"), Catch::Contains("needs both cert_file and key_file"));
  CHECK_THAT(error_of(tls + "  min_version: TLS13\n  max_version: TLS12\n"),
             Catch::Contains("is older than min_version TLS13"));
  CHECK_THAT(error_of(tls + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
             Catch::Contains("key 'tls_server_config.cipher_suites': not supported by substrated"));
  CHECK_THAT(error_of("http_server_config:\n  http2: false\n"),
             Catch::Contains("key 'http_server_config': not supported"));
  CHECK_THAT(error_of("basic_auth_users:\n  prometheus: hunter2\n"),
             Catch::Contains("key 'basic_auth_users.prometheus': expected a bcrypt hash"));
  CHECK_THAT(error_of("basic_auth_users: [a, b]\n"), Catch::Contains("expected a mapping"));
  CHECK_THAT(error_of("tls_server_config: {cert_file: a\n"), Catch::Contains("YAML syntax error"));
}

TEST_CASE("web config: a file that cannot be read or is no file is a clear error", "[unit]") {
  auto missing = substrate::load_web_config("/nonexistent/web.yml");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "cannot read web config /nonexistent/web.yml: No such file or directory");
  auto directory = substrate::load_web_config("/tmp");
  REQUIRE_FALSE(directory);
  CHECK_THAT(directory.error().message, Catch::Contains("not a regular file"));
}

TEST_CASE("web config: certificates that are missing or do not match their key are refused by name", "[e2e]") {
  const std::string& pki = substrate::testing::test_pki_dir();
  auto config = [&](const std::string& cert, const std::string& key) {
    auto parsed = parse_web_config("tls_server_config:\n  cert_file: " + cert + "\n  key_file: " + key + "\n",
                                   pki + "/web.yml", pki);
    REQUIRE(parsed);
    return *parsed;
  };
  auto fine = WebSecurity::create(config("server.crt", "server.key"));
  REQUIRE(fine);
  CHECK((*fine)->tls_context() != nullptr);
  auto missing = WebSecurity::create(config("nope.crt", "server.key"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "tls_server_config.cert_file " + pki + "/nope.crt: No such file or directory");
  auto mismatch = WebSecurity::create(config("server.crt", "client.key"));
  REQUIRE_FALSE(mismatch);
  CHECK_THAT(mismatch.error().message, Catch::EndsWith("key_file " + pki + "/client.key: key values mismatch"));
  auto not_a_cert = WebSecurity::create(config("server.key", "server.key"));
  REQUIRE_FALSE(not_a_cert);
  CHECK_THAT(not_a_cert.error().message, Catch::Contains("cert_file " + pki + "/server.key"));
}

TEST_CASE("web config: basic auth checks bcrypt hashes; unknown users and malformed headers fail", "[unit]") {
  substrate::WebConfig config;
  config.basic_auth_users["prometheus"] = substrate::testing::bcrypt_hash("s3cret");
  auto security = WebSecurity::create(config);
  REQUIRE(security);
  const WebSecurity& auth = **security;
  CHECK(auth.requires_auth());
  CHECK(auth.tls_context() == nullptr);
  CHECK(auth.authorized(basic("prometheus:s3cret")));
  CHECK(auth.authorized(basic("prometheus:s3cret")));  // again, from the cache
  CHECK_FALSE(auth.authorized(basic("prometheus:wrong")));
  CHECK_FALSE(auth.authorized(basic("nobody:s3cret")));
  CHECK(auth.authorized("bAsIc cHJvbWV0aGV1czpzM2NyZXQ="));  // the scheme is case-insensitive (RFC 7617)
  for (const char* bad : {"", "Basic", "Basic ", "Basic cHJvbWV0aGV1cw==", "Basic !!!!",
                          "Basic cHJvbWV0aGV1czpzM2NyZXQ", "Bearer cHJvbWV0aGV1czpzM2NyZXQ="}) {
    INFO(bad);
    CHECK_FALSE(auth.authorized(bad));
  }
  auto open = WebSecurity::create(substrate::WebConfig{});
  REQUIRE(open);
  CHECK_FALSE((*open)->requires_auth());
  CHECK((*open)->authorized(""));
}

TEST_CASE("web config: base64 decoding (RFC 4648 test vectors) refuses anything else", "[unit]") {
  CHECK(substrate::decode_base64("") == "");
  CHECK(substrate::decode_base64("Zg==") == "f");
  CHECK(substrate::decode_base64("Zm8=") == "fo");
  CHECK(substrate::decode_base64("Zm9v") == "foo");
  CHECK(substrate::decode_base64("Zm9vYmFy") == "foobar");
  for (const char* bad : {"Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm=v", "=Zm9"}) {
    INFO(bad);
    CHECK_FALSE(substrate::decode_base64(bad));
  }
}

TEST_CASE("web config: --web.listen-address and --web.config.file override the YAML", "[unit]") {
  substrate::Config config;
  REQUIRE(substrate::apply_web_flags({"/etc/substrated/web.yml", "127.0.0.1:9999"}, config));
  CHECK(config.web_config_file == "/etc/substrated/web.yml");
  CHECK(config.listen_address == "127.0.0.1");
  CHECK(config.listen_port == 9999);
  REQUIRE(substrate::apply_web_flags({"", "[::1]:19401"}, config));
  CHECK(config.listen_address == "::1");
  CHECK(config.listen_port == 19401);
  REQUIRE(substrate::apply_web_flags({"", ":19402"}, config));
  CHECK(config.listen_address == "0.0.0.0");
  CHECK(config.web_config_file == "/etc/substrated/web.yml");  // an empty flag keeps the YAML's
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:19400", "host:port"}) {
    INFO(bad);
    auto applied = substrate::apply_web_flags({"", bad}, config);
    REQUIRE_FALSE(applied);
    CHECK_THAT(applied.error().message, Catch::StartsWith(std::string("--web.listen-address '") + bad + "'"));
  }
}
