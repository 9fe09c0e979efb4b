#pragma once
// The HTTP endpoint's security from a web configuration file in the Prometheus exporter-toolkit
// format (the file node_exporter, dcgm-exporter and nvidia_gpu_exporter read with
// --web.config.file), so one file and one habit serve a whole fleet:
//
//   tls_server_config:
//     cert_file: server.crt          # relative paths: to the web config file's directory
//     key_file: server.key
//     client_ca_file: ca.crt         # verifies client certificates
//     client_auth_type: RequireAndVerifyClientCert
//     min_version: TLS12             # TLS10, TLS11, TLS12 (default), TLS13
//     max_version: TLS13
//   basic_auth_users:
//     prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nB, or python's crypt)
//
// Keys exporter-toolkit knows but substrated does not implement (cipher_suites,
// http_server_config, ...) are refused by name rather than silently ignored. The rules that
// exporter-toolkit enforces are enforced the same way (client CA without a policy that uses it,
// a verifying policy without a client CA, both cert_file and key_file).
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "daemon/config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace substrate {

struct WebTlsConfig {
  std::string cert_file;  // absolute after parsing
  std::string key_file;
  std::string client_ca_file;  // empty: none
  // exporter-toolkit's names (Go's tls.ClientAuthType): NoClientCert, RequestClientCert,
  // RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert.
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";
  std::string max_version;  // empty: the newest the library supports
  bool operator==(const WebTlsConfig&) const = default;
};

struct WebConfig {
  std::string source;                                   // the file it came from
  std::optional<WebTlsConfig> tls;                      // absent: plain HTTP
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash; empty: no auth
  bool operator==(const WebConfig&) const = default;
};

// Parses the YAML text; relative file names are resolved against `directory`. invalid_argument
// "FILE:LINE:COLUMN: key 'tls_server_config.min_version': ..." on any problem (defined in
// daemon/config.cpp, beside the daemon config's parser it shares).
Expected<WebConfig> parse_web_config(const std::string& text, const std::string& source, const std::string& directory);
// Reads and parses a file (at most 1 MiB); io_error when it cannot be read.
Expected<WebConfig> load_web_config(const std::string& path);

// What the HTTP server enforces: a TLS context with the certificates loaded (when TLS is on) and
// the basic-auth check. Built once per (re)load; the server holds it by shared_ptr, so live
// connections keep the context they started with while new ones get the reloaded one.
class WebSecurity {
 public:
  // Loads the certificate, key and client CA: invalid_argument naming the file and OpenSSL's
  // reason (missing file, key not matching the certificate, ...).
  static Expected<std::shared_ptr<WebSecurity>> create(const WebConfig& config);
  ~WebSecurity();
  WebSecurity(const WebSecurity&) = delete;
  WebSecurity& operator=(const WebSecurity&) = delete;

  // Null when the endpoint is plain HTTP.
  boost::asio::ssl::context* tls_context() const { return tls_.get(); }
  bool requires_auth() const { return !users_.empty(); }
  // Checks an Authorization header value ("Basic base64(user:password)") against the bcrypt
  // hashes. An unknown user costs one bcrypt like a known one (no timing hint about user names).
  // bcrypt at cost 10 takes ~50-100 ms of CPU on the event loop, so a successful check is cached
  // (by user and a SHA-256 of the password, never the password itself) until the next reload;
  // failures are not cached.
  bool authorized(std::string_view authorization) const;

 private:
  WebSecurity() = default;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::map<std::string, std::string> users_;
  mutable std::map<std::string, std::string> verified_;  // user -> SHA-256 of the password that passed
};

// `serve --web.config.file FILE` and `--web.listen-address HOST:PORT` (exporter convention; both
// override the YAML's listen keys, also across reloads).
struct WebFlags {
  std::string config_file;     // empty: the YAML's listen.web_config_file
  std::string listen_address;  // empty: the YAML's listen.address and listen.port
};

// Applies the flags to a loaded config. invalid_argument for a listen address that is not
// HOST:PORT ("127.0.0.1:19400", "[::1]:19400", ":19400" for every IPv4 interface, port 1..65535).
Status apply_web_flags(const WebFlags& flags, Config& config);

// Applies the flags to `config`, then builds the security of its web_config_file: null when none
// is set; the apply_web_flags, load_web_config and WebSecurity::create errors otherwise.
Expected<std::shared_ptr<WebSecurity>> load_web_security(const WebFlags& flags, Config& config);

// Decodes standard base64 (RFC 4648 section 4, padding required); nullopt on any other byte.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace substrate
