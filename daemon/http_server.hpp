#pragma once
// HTTP on the daemon's event loop (Boost.Beast): GET /metrics, /healthz, /status; everything
// else 404 (unknown path) or 405 (other method). Request targets in origin form (`/metrics`) and
// absolute form (`http://host/metrics`, RFC 9112 section 3.2.2) are accepted. Bounded: request
// line and header size, body size, a deadline for the request head, concurrent connections in
// all and per peer. Idle clients cannot starve scrapes: at a limit, the oldest connection still
// waiting for its request head (of that peer, else of anyone) is closed to make room, so
// /metrics and /healthz keep answering under hundreds of idle or slowloris connections.
// With a web configuration (daemon/web_config.hpp): TLS, whose detection and handshake fall
// under the same head deadline (plain HTTP to the TLS port gets a plain 400), and basic auth on
// every path but /healthz (401 with WWW-Authenticate). Nothing here starts device work.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/expected.hpp"

namespace substrate {

class WebSecurity;

struct HttpHandlers {
  std::function<std::string()> metrics;  // Prometheus text format
  std::function<std::string()> status;   // JSON document
};

struct HttpLimits {
  std::size_t max_header_bytes = 8192;
  std::size_t max_body_bytes = 0;  // GET only
  // A whole request head must arrive within min(head_timeout_seconds, read_timeout_seconds) of
  // the connection opening (or of the previous response on a kept-alive connection), however
  // slowly it trickles in; read_timeout_seconds also bounds writing a response.
  double head_timeout_seconds = 3.0;
  double read_timeout_seconds = 10.0;
  std::size_t max_connections = 256;
  std::size_t max_connections_per_peer = 32;  // by remote IP address
};

class HttpServer {
 public:
  // Binds and listens; invalid_argument / io_error naming the address on failure (e.g. in use).
  // `security` null: plain HTTP without auth.
  static Expected<std::unique_ptr<HttpServer>> start(boost::asio::io_context& io, const std::string& address,
                                                     std::uint16_t port, HttpHandlers handlers, HttpLimits limits = {},
                                                     std::shared_ptr<WebSecurity> security = nullptr);
  virtual ~HttpServer() = default;
  virtual std::uint16_t port() const = 0;  // the bound port (useful with port 0)
  // Closes the listener and live connections. Call stop() (and destroy the server) on the loop
  // thread or while the loop is not running.
  virtual void stop() = 0;
  // A reloaded web configuration: new connections use it (TLS or not, its users); live ones keep
  // the TLS context they began with. Call on the loop thread.
  virtual void set_security(std::shared_ptr<WebSecurity> security) = 0;
};

}  // namespace substrate
