// TLS context and basic-auth check from the exporter-toolkit web configuration (the parser lives
// in daemon/config.cpp beside the daemon config's). OpenSSL through Boost.Asio's ssl::context;
// bcrypt through libcrypt (Debian's libxcrypt knows $2a$, $2b$ and $2y$).
#include "daemon/web_config.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace substrate {
namespace {

namespace ssl = boost::asio::ssl;

// A bcrypt hash (cost 10) of a fixed phrase: an unknown user is checked against it so that the
// answer takes as long as for a known user.
constexpr const char* k_unknown_user_hash = "$2b$10$T9d2dRm7dJcT52j3P07ZGuEg4HcSnEp7mhHkHCw89VoJe1xwrQG1e";

int protocol_version(const std::string& name) {
  if (name == "TLS10") return TLS1_VERSION;
  if (name == "TLS11") return TLS1_1_VERSION;
  if (name == "TLS13") return TLS1_3_VERSION;
  return TLS1_2_VERSION;
}

std::string sha256(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest.data()), size);
}

// Does bcrypt(password, hash's salt and cost) reproduce the hash? Compared in constant time.
bool bcrypt_matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  const char* result = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  if (result == nullptr || std::strlen(result) != hash.size()) return false;
  return CRYPTO_memcmp(result, hash.data(), hash.size()) == 0;
}

Status readable(const std::string& key, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0)
    return Error{ErrorKind::invalid_argument, "tls_server_config." + key + " " + path + ": " + std::strerror(errno)};
  return ok_status();
}

}  // namespace

WebSecurity::~WebSecurity() = default;

Expected<std::shared_ptr<WebSecurity>> WebSecurity::create(const WebConfig& config) {
  std::shared_ptr<WebSecurity> security(new WebSecurity());
  security->users_ = config.basic_auth_users;
  if (!config.tls) return security;
  const WebTlsConfig& tls = *config.tls;
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  auto fail = [&](const std::string& what) -> Error {
    return Error{ErrorKind::invalid_argument, config.source + ": " + what + ": " + ec.message()};
  };
  context->set_options(
      ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::single_dh_use,
      ec);
  if (ec) return fail("TLS options");
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, protocol_version(tls.min_version)) != 1 ||
      (!tls.max_version.empty() && SSL_CTX_set_max_proto_version(native, protocol_version(tls.max_version)) != 1)) {
    return Error{ErrorKind::invalid_argument, config.source + ": the TLS library refuses " + tls.min_version + ".." +
                                                  (tls.max_version.empty() ? "newest" : tls.max_version)};
  }
  TRY(readable("cert_file", tls.cert_file));
  TRY(readable("key_file", tls.key_file));
  if (context->use_certificate_chain_file(tls.cert_file, ec)) return fail("cert_file " + tls.cert_file);
  // OpenSSL checks the key against the certificate loaded above ("key values mismatch").
  if (context->use_private_key_file(tls.key_file, ssl::context::pem, ec)) return fail("key_file " + tls.key_file);
  if (!tls.client_ca_file.empty()) {
    TRY(readable("client_ca_file", tls.client_ca_file));
    if (context->load_verify_file(tls.client_ca_file, ec)) return fail("client_ca_file " + tls.client_ca_file);
    // Tells clients which CAs are accepted, so curl or Prometheus pick the right certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(native, names);
  }
  // Go's tls.ClientAuthType in OpenSSL terms: "Request"/"RequireAny" ask for a certificate but
  // do not verify it (the callback accepts any); the "Verify" ones check it against the CA.
  const std::string& type = tls.client_auth_type;
  ssl::verify_mode mode = ssl::verify_none;
  if (type == "RequestClientCert" || type == "VerifyClientCertIfGiven") mode = ssl::verify_peer;
  if (type == "RequireAnyClientCert" || type == "RequireAndVerifyClientCert")
    mode = ssl::verify_peer | ssl::verify_fail_if_no_peer_cert;
  context->set_verify_mode(mode);
  if (type == "RequestClientCert" || type == "RequireAnyClientCert")
    context->set_verify_callback([](bool, ssl::verify_context&) { return true; });
  security->tls_ = std::move(context);
  return security;
}

bool WebSecurity::authorized(std::string_view authorization) const {
  if (users_.empty()) return true;
  // RFC 7617: the scheme is case-insensitive; one space before the credentials.
  constexpr std::string_view scheme = "basic ";
  if (authorization.size() <= scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return false;
  auto credentials = decode_base64(authorization.substr(scheme.size()));
  if (!credentials) return false;
  const auto colon = credentials->find(':');
  if (colon == std::string::npos) return false;
  const std::string user = credentials->substr(0, colon);
  const std::string password = credentials->substr(colon + 1);
  const auto known = users_.find(user);
  const std::string digest = sha256(password);
  if (known != users_.end()) {
    const auto cached = verified_.find(user);
    if (cached != verified_.end() && cached->second.size() == digest.size() &&
        CRYPTO_memcmp(cached->second.data(), digest.data(), digest.size()) == 0)
      return true;
  }
  const bool matches = bcrypt_matches(password, known == users_.end() ? k_unknown_user_hash : known->second);
  if (!matches || known == users_.end()) return false;
  verified_[user] = digest;
  return true;
}

Status apply_web_flags(const WebFlags& flags, Config& config) {
  if (!flags.config_file.empty()) config.web_config_file = flags.config_file;
  if (flags.listen_address.empty()) return ok_status();
  const std::string& text = flags.listen_address;
  auto bad = [&](const std::string& why) -> Status {
    return Error{ErrorKind::invalid_argument,
                 "--web.listen-address '" + text + "': " + why +
                     " (expected HOST:PORT such as 127.0.0.1:19400, [::]:19400 or :19400)"};
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return bad("an IPv6 address needs brackets");
  }
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) return bad("the port is not a number in 1..65535");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port_text.empty() || port == 0 || port > 65535) return bad("the port is not a number in 1..65535");
  config.listen_address = host.empty() ? "0.0.0.0" : host;
  config.listen_port = static_cast<std::uint16_t>(port);
  return ok_status();
}

Expected<std::shared_ptr<WebSecurity>> load_web_security(const WebFlags& flags, Config& config) {
  TRY(apply_web_flags(flags, config));
  if (config.web_config_file.empty()) return std::shared_ptr<WebSecurity>();
  TRY_ASSIGN(auto web, load_web_config(config.web_config_file));
  return WebSecurity::create(web);
}

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + j];
      // '=' only at the end of the last quantum, at most two of them.
      if (c == '=' && i + 4 == text.size() && j >= 2 && (j == 3 || text[i + 3] == '=')) {
        v[j] = 0;
        ++padding;
        continue;
      }
      v[j] = value(c);
      if (v[j] < 0 || padding > 0) return std::nullopt;
    }
    const unsigned bits = (unsigned(v[0]) << 18) | (unsigned(v[1]) << 12) | (unsigned(v[2]) << 6) | unsigned(v[3]);
    out.push_back(static_cast<char>((bits >> 16) & 0xff));
    if (padding < 2) out.push_back(static_cast<char>((bits >> 8) & 0xff));
    if (padding < 1) out.push_back(static_cast<char>(bits & 0xff));
  }
  return out;
}

}  // namespace substrate
