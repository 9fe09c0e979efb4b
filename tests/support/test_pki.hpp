#pragma once
// A throwaway PKI for the TLS tests (tests/support/make_test_certs.sh, the openssl command line),
// made once per test process, plus web configuration files and bcrypt hashes built on it.
#include <crypt.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "daemon/web_config.hpp"

namespace substrate::testing {

// The directory with ca.crt, server.crt/.key, client.crt/.key, other-ca.crt, other-client.crt/.key.
inline const std::string& test_pki_dir() {
  static const std::string dir = [] {
    const std::string d =
        (std::filesystem::temp_directory_path() / ("substrated-pki-" + std::to_string(::getpid()))).string();
    const std::string command =
        "bash " + std::string(SUBSTRATE_SOURCE_DIR) + "/tests/support/make_test_certs.sh " + d + " >/dev/null";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("make_test_certs.sh failed: " + command);
    return d;
  }();
  // Registered after `dir` is built, so it runs before `dir` is destroyed.
  static const bool cleanup = [] { return std::atexit([] { std::filesystem::remove_all(test_pki_dir()); }) == 0; }();
  (void)cleanup;
  return dir;
}

// bcrypt of `password` at cost 4 (the minimum: tests stay fast; the format is what production uses).
inline std::string bcrypt_hash(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt)) throw std::runtime_error("crypt_gensalt_rn");
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_rn(password.c_str(), salt, data.get(), sizeof(crypt_data));
  if (!hash) throw std::runtime_error("crypt_rn");
  return hash;
}

// Writes `yaml` as <pki>/<name> and builds the server's security from it; throws on an error.
inline std::shared_ptr<WebSecurity> web_security(const std::string& name, const std::string& yaml) {
  const std::string path = test_pki_dir() + "/" + name;
  std::ofstream(path) << yaml;
  auto config = load_web_config(path);
  if (!config) throw std::runtime_error(config.error().message);
  auto security = WebSecurity::create(*config);
  if (!security) throw std::runtime_error(security.error().message);
  return *security;
}

}  // namespace substrate::testing
