// HTTP on the daemon's event loop with Boost.Beast. All Beast code of the project lives in this
// file so that only one translation unit pays for it.
//
// Threading: everything runs on the io_context given to start(), which the daemon runs on one
// thread. stop() and the destructor touch the sockets directly, so call them on the loop thread
// or while the loop is not running.
#include "daemon/http_server.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

#include <spdlog/spdlog.h>
#include <zlib.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "daemon/web_config.hpp"

namespace substrate {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr const char* k_metrics_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* k_text_type = "text/plain; charset=utf-8";
constexpr const char* k_json_type = "application/json";

// Sent without reading the request when the connection limit is reached.
constexpr std::string_view k_busy_response =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Server: substrated\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 21\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "\r\n"
    "too many connections\n";

// Sent to a client that speaks plain HTTP to a TLS endpoint (what Go's server answers too), so
// `curl http://` says what is wrong instead of "empty reply".
constexpr std::string_view k_plain_to_tls_response =
    "HTTP/1.1 400 Bad Request\r\n"
    "Server: substrated\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 48\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Client sent an HTTP request to an HTTPS server.\n";

std::string endpoint_text(const std::string& address, std::uint16_t port) {
  if (address.find(':') != std::string::npos && (address.empty() || address.front() != '['))
    return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

std::chrono::steady_clock::duration to_duration(double seconds) {
  // Non-positive or absurd values fall back to sane bounds instead of never timing out.
  if (!(seconds > 0.001)) seconds = 0.001;
  if (seconds > 86400.0) seconds = 86400.0;
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

// Does an Accept-Encoding value (RFC 9110 section 12.5.3) accept gzip? A "gzip" or "*" token
// whose q is not 0.
bool accepts_gzip(std::string_view value) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    std::string lower;
    for (char c : item)
      if (c != ' ' && c != '\t') lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    const auto semicolon = lower.find(';');
    const std::string coding = lower.substr(0, semicolon);
    if (coding != "gzip" && coding != "x-gzip" && coding != "*") continue;
    if (semicolon == std::string::npos) return true;
    const auto q = lower.find("q=", semicolon);
    if (q == std::string::npos || std::strtod(lower.c_str() + q + 2, nullptr) > 0) return true;
  }
  return false;
}

// The gzip member (RFC 1952) of `text` at zlib's fastest level: the loop thread pays for it, and
// metric text shrinks ~10x even so. nullopt if zlib fails (the caller then sends it plain).
std::optional<std::string> gzip(const std::string& text) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

class Server;

// What the server knows of a connection, whatever its stream: bookkeeping for eviction and stop.
class SessionBase {
 public:
  SessionBase(std::shared_ptr<Server> server, std::uint64_t id, asio::ip::address peer)
      : server_(std::move(server)), id_(id), peer_(std::move(peer)) {}
  virtual ~SessionBase();
  virtual void close() = 0;
  // Waiting for a request head or a TLS handshake (not writing a response): may be closed to
  // make room.
  bool evictable() const { return reading_ && !closed_; }
  bool served() const { return served_; }  // answered at least one request
  const asio::ip::address& peer() const { return peer_; }

 protected:
  std::shared_ptr<Server> server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  std::uint64_t id_;
  asio::ip::address peer_;
  bool closed_ = false;
  bool reading_ = false;
  bool served_ = false;
};

// One connection over a plain TCP stream or TLS on it (Stream = beast::tcp_stream or TlsStream).
template <typename Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool k_tls = std::is_same_v<Stream, TlsStream>;
  // `security` (TLS only) keeps the context alive across a reload that replaces it.
  Session(std::shared_ptr<Server> server, tcp::socket socket, std::uint64_t id, asio::ip::address peer,
          std::shared_ptr<WebSecurity> security);
  void start();
  void close() override;

 private:
  auto& lowest() { return beast::get_lowest_layer(stream_); }
  void on_detect(error_code ec, bool is_tls);
  void on_handshake(error_code ec, std::size_t used);
  void read_request();
  void on_read(error_code ec);
  void send(Response response, bool keep_alive);
  void send_error(http::status status, std::string_view body);
  void on_write(error_code ec, bool keep_alive);

  std::shared_ptr<WebSecurity> security_;
  Stream stream_;
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(asio::io_context& io, HttpHandlers handlers, HttpLimits limits, std::shared_ptr<WebSecurity> security)
      : io_(io),
        acceptor_(io),
        retry_timer_(io),
        handlers_(std::move(handlers)),
        limits_(limits),
        security_(std::move(security)) {
    if (limits_.max_connections == 0) limits_.max_connections = 1;
    if (limits_.max_connections_per_peer == 0) limits_.max_connections_per_peer = 1;
    read_timeout_ = to_duration(limits_.read_timeout_seconds);
    head_timeout_ = std::min(read_timeout_, to_duration(limits_.head_timeout_seconds));
  }

  Status listen(const std::string& address, std::uint16_t port);
  void accept();
  void stop();
  std::uint16_t port() const { return port_; }

  Response route(const Request& request);
  const HttpLimits& limits() const { return limits_; }
  std::chrono::steady_clock::duration read_timeout() const { return read_timeout_; }
  std::chrono::steady_clock::duration head_timeout() const { return head_timeout_; }
  bool stopped() const { return stopped_; }
  void forget(std::uint64_t id) { sessions_.erase(id); }
  void set_security(std::shared_ptr<WebSecurity> security) { security_ = std::move(security); }

 private:
  void on_accept(error_code ec, tcp::socket socket);
  // Closes the connection to evict to make room for one more from `peer`; false when every
  // connection at the binding limit is busy answering.
  bool make_room(const asio::ip::address& peer);
  static void reject(tcp::socket socket);

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  HttpHandlers handlers_;
  HttpLimits limits_;
  std::chrono::steady_clock::duration read_timeout_{};
  std::chrono::steady_clock::duration head_timeout_{};
  std::shared_ptr<WebSecurity> security_;  // null: plain HTTP, no auth
  std::map<std::uint64_t, std::weak_ptr<SessionBase>> sessions_;
  std::uint64_t next_id_ = 1;
  std::uint16_t port_ = 0;
  std::string where_;
  bool stopped_ = false;
};

// ---- Server -------------------------------------------------------------------------------------

Status Server::listen(const std::string& address, std::uint16_t port) {
  std::string host = address;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  where_ = endpoint_text(host, port);
  if (host.empty())
    return Error{ErrorKind::invalid_argument, "empty HTTP listen address (port " + std::to_string(port) + ")"};

  error_code ec;
  tcp::endpoint endpoint;
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, port);
  } else {
    // A host name such as "localhost": take the first address it resolves to.
    tcp::resolver resolver(io_);
    auto results =
        resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
      return Error{ErrorKind::invalid_argument,
                   "invalid HTTP listen address " + where_ + ": " + (ec ? ec.message() : std::string("no address"))};
    endpoint = results.begin()->endpoint();
  }

  auto fail = [&](const char* what) -> Status {
    error_code ignored;
    acceptor_.close(ignored);
    return Error{ErrorKind::io_error, "cannot listen on " + where_ + ": " + what + ": " + ec.message()};
  };
  if (acceptor_.open(endpoint.protocol(), ec)) return fail("socket");
  if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec)) return fail("SO_REUSEADDR");
  if (acceptor_.bind(endpoint, ec)) return fail("bind");
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen");
  auto local = acceptor_.local_endpoint(ec);
  if (ec) return fail("local address");
  port_ = local.port();
  where_ = endpoint_text(local.address().to_string(), port_);
  spdlog::info("HTTP listening on {}", where_);
  return ok_status();
}

void Server::accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](error_code ec, tcp::socket socket) { self->on_accept(ec, std::move(socket)); });
}

void Server::on_accept(error_code ec, tcp::socket socket) {
  if (stopped_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Typically EMFILE/ENFILE: back off briefly instead of spinning on the loop.
    spdlog::warn("HTTP accept on {} failed: {}", where_, ec.message());
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([self = shared_from_this()](error_code timer_ec) {
      if (!timer_ec && !self->stopped_) self->accept();
    });
    return;
  }
  error_code peer_ec;
  auto remote = socket.remote_endpoint(peer_ec);
  if (peer_ec) {  // already gone
    error_code ignored;
    socket.close(ignored);
  } else if (!make_room(remote.address())) {
    spdlog::debug("HTTP connection limits reached and every connection busy; answering 503");
    reject(std::move(socket));
  } else {
    auto id = next_id_++;
    auto start = [&](auto session) {
      sessions_.emplace(id, session);
      session->start();
    };
    if (security_ && security_->tls_context())
      start(
          std::make_shared<Session<TlsStream>>(shared_from_this(), std::move(socket), id, remote.address(), security_));
    else
      start(std::make_shared<Session<beast::tcp_stream>>(shared_from_this(), std::move(socket), id, remote.address(),
                                                         nullptr));
  }
  accept();
}

bool Server::make_room(const asio::ip::address& peer) {
  // Oldest first (ids grow); among the candidates, one that never completed a request (an idle
  // or slowloris client) goes before a kept-alive scraper waiting for its next request.
  auto evict_oldest = [&](bool same_peer_only) {
    std::shared_ptr<SessionBase> never_served, served;
    for (auto& [id, weak] : sessions_) {
      auto session = weak.lock();
      if (!session || !session->evictable() || (same_peer_only && session->peer() != peer)) continue;
      if (!session->served()) {
        never_served = std::move(session);
        break;
      }
      if (!served) served = std::move(session);
    }
    auto victim = never_served ? never_served : served;
    if (!victim) return false;
    victim->close();
    return true;
  };
  std::size_t from_peer = 0;
  for (auto& [id, weak] : sessions_)
    if (auto session = weak.lock(); session && session->peer() == peer) ++from_peer;
  if (from_peer >= limits_.max_connections_per_peer) {
    spdlog::debug("HTTP connections from {} at the per-peer limit ({}); closing its oldest idle one", peer.to_string(),
                  limits_.max_connections_per_peer);
    if (!evict_oldest(true)) return false;
  }
  if (sessions_.size() >= limits_.max_connections) {
    spdlog::debug("HTTP connection limit ({}) reached; closing the oldest idle connection", limits_.max_connections);
    if (!evict_oldest(false)) return false;
  }
  return true;
}

void Server::reject(tcp::socket socket) {
  // One non-blocking write: the response is tiny and fits any socket buffer; if it does not,
  // the client only loses the courtesy of a 503.
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(k_busy_response.data(), k_busy_response.size()), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
  // Copy first: closing may end a session, which removes itself from the map.
  std::vector<std::shared_ptr<SessionBase>> live;
  for (auto& [id, weak] : sessions_)
    if (auto session = weak.lock()) live.push_back(std::move(session));
  for (auto& session : live) session->close();
  if (port_ != 0) spdlog::info("HTTP stopped listening on {}", where_);
}

// The path of a request target: origin form as is; absolute form ("http://host:port/path?q",
// RFC 9112 section 3.2.2) without its scheme and authority ("" path means "/").
std::string_view request_path(std::string_view target) {
  auto starts_with_nocase = [&](std::string_view prefix) {
    if (target.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(target[i])) != prefix[i]) return false;
    return true;
  };
  std::size_t scheme = starts_with_nocase("http://") ? 7 : starts_with_nocase("https://") ? 8 : 0;
  if (scheme == 0) return target;
  auto path = target.find_first_of("/?", scheme);
  if (path == std::string_view::npos) return "/";
  if (target[path] == '?') return "/";
  return target.substr(path);
}

Response Server::route(const Request& request) {
  std::string_view target = request_path(std::string_view(request.target().data(), request.target().size()));
  if (auto query = target.find('?'); query != std::string_view::npos) target = target.substr(0, query);

  const std::function<std::string()>* handler = nullptr;
  const char* type = nullptr;
  bool healthz = false;
  if (target == "/metrics") {
    handler = &handlers_.metrics;
    type = k_metrics_type;
  } else if (target == "/status") {
    handler = &handlers_.status;
    type = k_json_type;
  } else if (target == "/healthz") {
    healthz = true;
    type = k_text_type;
  }

  Response response;
  response.version(request.version());
  response.set(http::field::server, "substrated");
  auto plain = [&](http::status status, std::string_view body) {
    response.result(status);
    response.set(http::field::content_type, k_text_type);
    response.body().assign(body.data(), body.size());
  };

  // Everything but /healthz sits behind basic auth when the web config has users, unknown paths
  // included (as exporter-toolkit does): a liveness probe needs no credentials and learns
  // nothing but "ok".
  const auto authorization = request.find(http::field::authorization);
  if (!healthz && security_ && security_->requires_auth() &&
      !security_->authorized(authorization == request.end()
                                 ? std::string_view()
                                 : std::string_view(authorization->value().data(), authorization->value().size()))) {
    plain(http::status::unauthorized, "Unauthorized\n");
    response.set(http::field::www_authenticate, "Basic realm=\"substrated\", charset=\"UTF-8\"");
  } else if (!handler && !healthz) {
    plain(http::status::not_found, "not found\n");
  } else if (request.method() != http::verb::get && request.method() != http::verb::head) {
    plain(http::status::method_not_allowed, "method not allowed\n");
    response.set(http::field::allow, "GET, HEAD");
  } else if (healthz) {
    response.result(http::status::ok);
    response.set(http::field::content_type, type);
    response.body() = "ok\n";
  } else {
    try {
      if (!*handler) throw std::runtime_error("no handler installed");
      std::string body = (*handler)();
      response.result(http::status::ok);
      response.set(http::field::content_type, type);
      response.set(http::field::vary, "Accept-Encoding");
      const auto encodings = request.find(http::field::accept_encoding);
      std::optional<std::string> zipped;
      if (encodings != request.end() &&
          accepts_gzip(std::string_view(encodings->value().data(), encodings->value().size())))
        zipped = gzip(body);
      if (zipped) {
        response.set(http::field::content_encoding, "gzip");
        body = std::move(*zipped);
      }
      response.body() = std::move(body);
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler for {} failed: {}", target, e.what());
      plain(http::status::internal_server_error, "internal error\n");
    } catch (...) {
      spdlog::error("HTTP handler for {} failed with a non-standard exception", target);
      plain(http::status::internal_server_error, "internal error\n");
    }
  }
  if (response.result() == http::status::ok || response.result() == http::status::internal_server_error)
    response.set(http::field::cache_control, "no-store");
  response.content_length(response.body().size());
  // HEAD: same headers (Content-Length of the GET body), no body.
  if (request.method() == http::verb::head) response.body().clear();
  return response;
}

// ---- Session ------------------------------------------------------------------------------------

SessionBase::~SessionBase() { server_->forget(id_); }

template <typename Stream>
Session<Stream>::Session(std::shared_ptr<Server> server, tcp::socket socket, std::uint64_t id, asio::ip::address peer,
                         std::shared_ptr<WebSecurity> security)
    : SessionBase(std::move(server), id, std::move(peer)), security_(std::move(security)), stream_([&]() -> Stream {
        if constexpr (k_tls)
          return Stream(beast::tcp_stream(std::move(socket)), *security_->tls_context());
        else
          return Stream(std::move(socket));
      }()) {}

template <typename Stream>
void Session<Stream>::start() {
  if constexpr (!k_tls) {
    read_request();
  } else {
    // Sniff the first bytes: a TLS ClientHello goes on to the handshake, anything else (plain
    // HTTP) gets a plain 400 and the door. Detection and handshake share the head deadline, so a
    // client that opens a connection and stalls mid-handshake is cut off like a slowloris.
    lowest().expires_after(server_->head_timeout());
    reading_ = true;
    beast::async_detect_ssl(
        stream_.next_layer(), buffer_,
        [self = this->shared_from_this()](error_code ec, bool is_tls) { self->on_detect(ec, is_tls); });
  }
}

template <typename Stream>
void Session<Stream>::on_detect(error_code ec, bool is_tls) {
  if constexpr (k_tls) {
    if (closed_ || server_->stopped() || ec) return close();
    if (!is_tls) {
      reading_ = false;
      spdlog::debug("HTTP: plain HTTP from {} on the TLS endpoint; answered 400", peer_.to_string());
      asio::async_write(stream_.next_layer(),
                        asio::buffer(k_plain_to_tls_response.data(), k_plain_to_tls_response.size()),
                        [self = this->shared_from_this()](error_code, std::size_t) { self->close(); });
      return;
    }
    stream_.async_handshake(
        asio::ssl::stream_base::server, buffer_.data(),
        [self = this->shared_from_this()](error_code e, std::size_t used) { self->on_handshake(e, used); });
  }
}

template <typename Stream>
void Session<Stream>::on_handshake(error_code ec, std::size_t used) {
  reading_ = false;
  if (closed_ || server_->stopped()) return close();
  if (ec) {
    // A client without the certificate the policy needs, one refused by min_version, a scanner.
    spdlog::debug("HTTP: TLS handshake with {} failed: {}", peer_.to_string(), ec.message());
    return close();
  }
  buffer_.consume(used);
  read_request();
}

template <typename Stream>
void Session<Stream>::close() {
  if (closed_) return;
  closed_ = true;
  reading_ = false;
  // Off the server's books now, so the room made for a new connection counts at once (the
  // session object lives on until its pending operation completes). TLS connections are closed
  // without a close_notify: waiting for the peer's would give it one more way to hold the slot.
  server_->forget(id_);
  error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest().close();
}

template <typename Stream>
void Session<Stream>::read_request() {
  const auto& limits = server_->limits();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
      std::max<std::size_t>(limits.max_header_bytes, 64), std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(limits.max_body_bytes);
  // One deadline for the whole head, not per byte: a client trickling a byte a second is cut off.
  lowest().expires_after(server_->head_timeout());
  reading_ = true;
  http::async_read(stream_, buffer_, *parser_,
                   [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
}

template <typename Stream>
void Session<Stream>::on_read(error_code ec) {
  reading_ = false;
  if (closed_ || server_->stopped()) return close();
  if (ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return send_error(http::status::request_header_fields_too_large, "request header too large\n");
    if (ec == http::error::body_limit) return send_error(http::status::payload_too_large, "request body too large\n");
    // end_of_stream, timeout (the stream is already closed), a reset, a TLS error, or a client
    // that left in the middle of a request: nobody to answer.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == beast::error::timeout ||
        ec.category() != http::make_error_code(http::error::bad_method).category()) {
      if (ec == beast::error::timeout) spdlog::debug("HTTP client dropped after the read timeout");
      return close();
    }
    return send_error(http::status::bad_request, "bad request\n");
  }
  Request request = parser_->release();
  bool keep_alive = request.keep_alive();
  served_ = true;
  send(server_->route(request), keep_alive);
}

template <typename Stream>
void Session<Stream>::send_error(http::status status, std::string_view body) {
  Response response{status, 11};
  response.set(http::field::server, "substrated");
  response.set(http::field::content_type, k_text_type);
  response.body().assign(body.data(), body.size());
  response.content_length(response.body().size());
  send(std::move(response), false);
}

template <typename Stream>
void Session<Stream>::send(Response response, bool keep_alive) {
  response_ = std::move(response);
  response_.keep_alive(keep_alive);
  lowest().expires_after(server_->read_timeout());
  http::async_write(stream_, response_, [self = this->shared_from_this(), keep_alive](error_code ec, std::size_t) {
    self->on_write(ec, keep_alive);
  });
}

template <typename Stream>
void Session<Stream>::on_write(error_code ec, bool keep_alive) {
  if (ec || !keep_alive || closed_ || server_->stopped()) return close();
  read_request();
}

// ---- Public wrapper -----------------------------------------------------------------------------

class HttpServerHandle final : public HttpServer {
 public:
  explicit HttpServerHandle(std::shared_ptr<Server> server) : server_(std::move(server)) {}
  ~HttpServerHandle() override { server_->stop(); }
  std::uint16_t port() const override { return server_->port(); }
  void stop() override { server_->stop(); }
  void set_security(std::shared_ptr<WebSecurity> security) override { server_->set_security(std::move(security)); }

 private:
  std::shared_ptr<Server> server_;
};

}  // namespace

Expected<std::unique_ptr<HttpServer>> HttpServer::start(boost::asio::io_context& io, const std::string& address,
                                                        std::uint16_t port, HttpHandlers handlers, HttpLimits limits,
                                                        std::shared_ptr<WebSecurity> security) {
  auto server = std::make_shared<Server>(io, std::move(handlers), limits, std::move(security));
  if (auto status = server->listen(address, port); !status) return status.error();
  server->accept();
  return std::unique_ptr<HttpServer>(std::make_unique<HttpServerHandle>(std::move(server)));
}

}  // namespace substrate
