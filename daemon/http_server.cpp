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
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace substrate {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

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

class Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server> server, tcp::socket socket, std::uint64_t id, asio::ip::address peer);
  ~Session();
  void start() { read_request(); }
  void close();
  // Waiting for a request head (not writing a response): may be closed to make room.
  bool evictable() const { return reading_ && !closed_; }
  bool served() const { return served_; }  // answered at least one request
  const asio::ip::address& peer() const { return peer_; }

 private:
  void read_request();
  void on_read(error_code ec);
  void send(Response response, bool keep_alive);
  void send_error(http::status status, std::string_view body);
  void on_write(error_code ec, bool keep_alive);

  std::shared_ptr<Server> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  std::uint64_t id_;
  asio::ip::address peer_;
  bool closed_ = false;
  bool reading_ = false;
  bool served_ = false;
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(asio::io_context& io, HttpHandlers handlers, HttpLimits limits)
      : io_(io), acceptor_(io), retry_timer_(io), handlers_(std::move(handlers)), limits_(limits) {
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
  std::map<std::uint64_t, std::weak_ptr<Session>> sessions_;
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
    auto session = std::make_shared<Session>(shared_from_this(), std::move(socket), id, remote.address());
    sessions_.emplace(id, session);
    session->start();
  }
  accept();
}

bool Server::make_room(const asio::ip::address& peer) {
  // Oldest first (ids grow); among the candidates, one that never completed a request (an idle
  // or slowloris client) goes before a kept-alive scraper waiting for its next request.
  auto evict_oldest = [&](bool same_peer_only) {
    std::shared_ptr<Session> never_served, served;
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
  std::vector<std::shared_ptr<Session>> live;
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

  if (!handler && !healthz) {
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

Session::Session(std::shared_ptr<Server> server, tcp::socket socket, std::uint64_t id, asio::ip::address peer)
    : server_(std::move(server)), stream_(std::move(socket)), id_(id), peer_(std::move(peer)) {}

Session::~Session() { server_->forget(id_); }

void Session::close() {
  if (closed_) return;
  closed_ = true;
  reading_ = false;
  // Off the server's books now, so the room made for a new connection counts at once (the
  // session object lives on until its pending operation completes).
  server_->forget(id_);
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void Session::read_request() {
  const auto& limits = server_->limits();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
      std::max<std::size_t>(limits.max_header_bytes, 64), std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(limits.max_body_bytes);
  // One deadline for the whole head, not per byte: a client trickling a byte a second is cut off.
  stream_.expires_after(server_->head_timeout());
  reading_ = true;
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
}

void Session::on_read(error_code ec) {
  reading_ = false;
  if (closed_ || server_->stopped()) return close();
  if (ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return send_error(http::status::request_header_fields_too_large, "request header too large\n");
    if (ec == http::error::body_limit) return send_error(http::status::payload_too_large, "request body too large\n");
    // end_of_stream, timeout (the stream is already closed), a reset, or a client that left
    // in the middle of a request: nobody to answer.
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

void Session::send_error(http::status status, std::string_view body) {
  Response response{status, 11};
  response.set(http::field::server, "substrated");
  response.set(http::field::content_type, k_text_type);
  response.body().assign(body.data(), body.size());
  response.content_length(response.body().size());
  send(std::move(response), false);
}

void Session::send(Response response, bool keep_alive) {
  response_ = std::move(response);
  response_.keep_alive(keep_alive);
  stream_.expires_after(server_->read_timeout());
  http::async_write(stream_, response_, [self = shared_from_this(), keep_alive](error_code ec, std::size_t) {
    self->on_write(ec, keep_alive);
  });
}

void Session::on_write(error_code ec, bool keep_alive) {
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

 private:
  std::shared_ptr<Server> server_;
};

}  // namespace

Expected<std::unique_ptr<HttpServer>> HttpServer::start(boost::asio::io_context& io, const std::string& address,
                                                        std::uint16_t port, HttpHandlers handlers, HttpLimits limits) {
  auto server = std::make_shared<Server>(io, std::move(handlers), limits);
  if (auto status = server->listen(address, port); !status) return status.error();
  server->accept();
  return std::unique_ptr<HttpServer>(std::make_unique<HttpServerHandle>(std::move(server)));
}

}  // namespace substrate
