// HTTP server tests over real loopback sockets: the server runs on an io_context on its own thread,
// the clients are plain blocking POSIX sockets with receive timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <zlib.h>

#include <catch2/catch.hpp>

#include "daemon/http_server.hpp"
#include "daemon/web_config.hpp"
#include "tests/support/server_test_support.hpp"
#include "tests/support/test_pki.hpp"

namespace {

using namespace std::chrono_literals;
using namespace substrate::testing;
using substrate::HttpHandlers;
using substrate::HttpLimits;
using substrate::HttpServer;

// A server on its own loop thread; stopped and destroyed on the loop, before the loop's io_context.
class Fixture {
 public:
  explicit Fixture(HttpHandlers handlers, HttpLimits limits = {},
                   std::shared_ptr<substrate::WebSecurity> security = nullptr) {
    std::optional<substrate::Error> error;
    loop_.on_loop([&] {
      auto started = HttpServer::start(loop_.io(), "127.0.0.1", 0, std::move(handlers), limits, std::move(security));
      if (started)
        server_ = std::move(started.value());
      else
        error = started.error();
    });
    if (error) FAIL("start: " << error->message);
  }
  ~Fixture() {
    loop_.on_loop([this] {
      server_->stop();
      server_.reset();
    });
  }
  std::uint16_t port() const { return server_->port(); }
  void stop() {
    loop_.on_loop([this] { server_->stop(); });
  }
  void set_security(std::shared_ptr<substrate::WebSecurity> security) {
    loop_.on_loop([&] { server_->set_security(std::move(security)); });
  }

 private:
  LoopThread loop_;
  std::unique_ptr<HttpServer> server_;
};

class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    set_io_timeouts(fd_);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool send(const std::string& data) { return send_all(fd_, data); }
  // Everything until the server closes (or the 5 s receive timeout).
  std::string read_all() { return receive_until_closed(fd_); }
  // True when the server closed the connection within `limit` (EOF or reset).
  bool closed_within(std::chrono::milliseconds limit) {
    pollfd entry{fd_, POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(limit.count())) <= 0) return false;
    char byte;
    return ::recv(fd_, &byte, 1, MSG_DONTWAIT) <= 0;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct Reply {
  int status = 0;
  std::string head;
  std::string body;
  std::optional<std::string> header(const std::string& name) const {
    std::string lower_head = head;
    for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string key = "\r\n" + name + ":";
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto at = lower_head.find(key);
    if (at == std::string::npos) return std::nullopt;
    auto start = at + key.size();
    auto end = head.find("\r\n", start);
    std::string value = head.substr(start, end - start);
    while (!value.empty() && value.front() == ' ') value.erase(value.begin());
    return value;
  }
};

Reply parse(const std::string& raw) {
  Reply reply;
  auto split = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || split == std::string::npos) return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  reply.head = raw.substr(0, split);
  reply.body = raw.substr(split + 4);
  return reply;
}

Reply http_exchange(std::uint16_t port, const std::string& raw) {
  Client client(port);
  REQUIRE(client.connected());
  REQUIRE(client.send(raw));
  return parse(client.read_all());
}

Reply get(std::uint16_t port, const std::string& target, const std::string& method = "GET") {
  return http_exchange(port, method + " " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
}

std::string big_metrics() {
  std::string text = "# HELP substrate_test A test metric.\n# TYPE substrate_test gauge\n";
  for (int i = 0; i < 4000; ++i) text += "substrate_test{n=\"" + std::to_string(i) + "\"} 1\n";
  return text;
}

HttpHandlers simple_handlers() {
  HttpHandlers handlers;
  handlers.metrics = [] { return std::string("substrate_up_test 1\n"); };
  handlers.status = [] { return std::string("{\"devices\":[]}"); };
  return handlers;
}

}  // namespace

TEST_CASE("http: /metrics, /healthz and /status bodies and content types", "[unit]") {
  Fixture fixture(simple_handlers());
  auto metrics = get(fixture.port(), "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body == "substrate_up_test 1\n");
  CHECK(metrics.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.header("Content-Length") == std::to_string(metrics.body.size()));

  auto health = get(fixture.port(), "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");

  auto status = get(fixture.port(), "/status?pretty=1");
  CHECK(status.status == 200);
  CHECK(status.body == "{\"devices\":[]}");
  CHECK(status.header("Content-Type") == "application/json");
}

TEST_CASE("http: HEAD gives the headers of GET without a body", "[unit]") {
  Fixture fixture(simple_handlers());
  auto head = get(fixture.port(), "/metrics", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == std::to_string(std::string("substrate_up_test 1\n").size()));
}

TEST_CASE("http: unknown path is 404, other methods are 405 with Allow", "[unit]") {
  Fixture fixture(simple_handlers());
  CHECK(get(fixture.port(), "/nope").status == 404);
  CHECK(get(fixture.port(), "/").status == 404);
  auto post = get(fixture.port(), "/metrics", "POST");
  CHECK(post.status == 405);
  CHECK(post.header("Allow") == "GET, HEAD");
  CHECK(get(fixture.port(), "/healthz", "DELETE").status == 405);
}

TEST_CASE("http: keep-alive serves several requests on one connection", "[unit]") {
  Fixture fixture(simple_handlers());
  Client client(fixture.port());
  REQUIRE(client.connected());
  REQUIRE(
      client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  auto all = client.read_all();
  std::size_t count = 0;
  for (auto at = all.find("HTTP/1.1 200 OK"); at != std::string::npos; at = all.find("HTTP/1.1 200 OK", at + 1))
    ++count;
  CHECK(count == 3);
  CHECK(all.find("substrate_up_test 1\n") != std::string::npos);
}

TEST_CASE("http: malformed requests get 400 and the server keeps serving", "[unit]") {
  Fixture fixture(simple_handlers());
  auto bad = http_exchange(fixture.port(), "THIS IS NOT HTTP\r\n\r\n");
  CHECK(bad.status == 400);
  CHECK(http_exchange(fixture.port(), "GET /metrics HTTP/9.9\r\n\r\n").status == 400);
  CHECK(http_exchange(fixture.port(), "GET /metrics HTTP/1.1\r\nBad Header Line\r\n\r\n").status == 400);
  CHECK(get(fixture.port(), "/healthz").status == 200);
}

TEST_CASE("http: an oversized header gets 431 and a body gets 413; the server keeps serving", "[unit]") {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  Fixture fixture(simple_handlers(), limits);
  auto big = http_exchange(fixture.port(),
                           "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Filler: " + std::string(8192, 'a') + "\r\n\r\n");
  CHECK((big.status == 431 || big.status == 400));
  auto body = http_exchange(fixture.port(), "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(body.status == 413);
  CHECK(get(fixture.port(), "/metrics").status == 200);
}

TEST_CASE("http: a slow client is dropped after the read timeout and others are served", "[unit]") {
  HttpLimits limits;
  limits.read_timeout_seconds = 0.3;
  Fixture fixture(simple_handlers(), limits);
  Client slow(fixture.port());
  REQUIRE(slow.connected());
  REQUIRE(slow.send("GET /metr"));
  auto started = std::chrono::steady_clock::now();
  CHECK(get(fixture.port(), "/healthz").status == 200);
  CHECK(slow.closed_within(3000ms));
  CHECK(std::chrono::steady_clock::now() - started < 2500ms);
  CHECK(get(fixture.port(), "/metrics").status == 200);
}

TEST_CASE("http: 50 concurrent scrapes all succeed", "[unit]") {
  HttpHandlers handlers = simple_handlers();
  const std::string expected = big_metrics();
  handlers.metrics = [&expected] { return expected; };
  Fixture fixture(handlers);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i)
    threads.emplace_back([&] {
      Client client(fixture.port());
      if (!client.connected()) return;
      if (!client.send("GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) return;
      auto reply = parse(client.read_all());
      if (reply.status == 200 && reply.body == expected) ++good;
    });
  for (auto& thread : threads) thread.join();
  CHECK(good.load() == 50);
}

// Issue 17 changed this: at the limit the oldest connection still waiting for its request head
// is closed to make room (it used to be the newcomer that got 503).
TEST_CASE("http: at the connection limit the oldest idle connection makes room", "[unit]") {
  HttpLimits limits;
  limits.max_connections = 2;
  Fixture fixture(simple_handlers(), limits);
  Client first(fixture.port());
  REQUIRE(first.connected());
  std::this_thread::sleep_for(50ms);
  Client second(fixture.port());
  REQUIRE(second.connected());
  std::this_thread::sleep_for(200ms);  // let the server accept both
  CHECK(get(fixture.port(), "/healthz").status == 200);
  CHECK(first.closed_within(2000ms));
  CHECK_FALSE(second.closed_within(100ms));
  CHECK(get(fixture.port(), "/metrics").status == 200);
}

TEST_CASE("http: connections over the limit that are all busy answering get 503; capacity comes back", "[unit]") {
  HttpLimits limits;
  limits.max_connections = 2;
  limits.read_timeout_seconds = 30;
  HttpHandlers handlers = simple_handlers();
  // Far more than loopback socket buffers hold: a client that does not read keeps its session writing.
  const std::string huge(48u << 20, 'x');
  handlers.metrics = [&huge] { return huge; };
  Fixture fixture(handlers, limits);
  auto first = std::make_unique<Client>(fixture.port());
  auto second = std::make_unique<Client>(fixture.port());
  REQUIRE(first->send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(second->send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::this_thread::sleep_for(500ms);  // both sessions are now stuck writing
  CHECK(get(fixture.port(), "/healthz").status == 503);
  first.reset();
  second.reset();
  int status = 0;
  for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
    std::this_thread::sleep_for(20ms);
    status = get(fixture.port(), "/healthz").status;
  }
  CHECK(status == 200);
}

// Issue 17: 64 idle TCP connections made 29 of 30 scrapes and /healthz answer 503.
TEST_CASE("http: 200 idle and 20 slowloris connections do not deny /metrics or /healthz", "[unit]") {
  HttpLimits limits;  // the daemon's defaults, except a shorter head deadline to keep this quick
  limits.head_timeout_seconds = 1.0;
  Fixture fixture(simple_handlers(), limits);
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(std::make_unique<Client>(fixture.port()));
  std::vector<std::unique_ptr<Client>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<Client>(fixture.port()));
    slow.back()->send("GET /metr");
  }
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {  // one byte per connection every 100 ms, never finishing the head
    while (trickling) {
      for (auto& client : slow) client->send("X");
      std::this_thread::sleep_for(100ms);
    }
  });
  int good = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) {
    if (get(fixture.port(), i % 2 ? "/healthz" : "/metrics").status == 200) ++good;
    // Reconnecting idle clients keep the pressure up.
    idle[static_cast<std::size_t>(i)] = std::make_unique<Client>(fixture.port());
  }
  CHECK(good == 30);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  trickling = false;
  trickle.join();
}

TEST_CASE("http: a client trickling its request head a byte at a time is cut off at the head deadline", "[unit]") {
  HttpLimits limits;
  limits.head_timeout_seconds = 0.5;
  Fixture fixture(simple_handlers(), limits);
  Client slow(fixture.port());
  REQUIRE(slow.connected());
  const auto started = std::chrono::steady_clock::now();
  const std::string head = "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(100, 'a');
  bool closed = false;
  for (char byte : head) {
    if (!slow.send(std::string(1, byte)) || slow.closed_within(50ms)) {
      closed = true;
      break;
    }
  }
  CHECK(closed);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(get(fixture.port(), "/metrics").status == 200);
}

TEST_CASE("http: absolute-form request targets are served (RFC 9112 3.2.2)", "[unit]") {
  Fixture fixture(simple_handlers());
  auto metrics = get(fixture.port(), "http://127.0.0.1/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body == "substrate_up_test 1\n");
  CHECK(get(fixture.port(), "HTTP://127.0.0.1:19400/healthz?probe=1").status == 200);
  CHECK(get(fixture.port(), "https://example.test/status").status == 200);
  CHECK(get(fixture.port(), "http://127.0.0.1/nope").status == 404);
  CHECK(get(fixture.port(), "http://127.0.0.1").status == 404);  // path "/"
}

TEST_CASE("http: a handler that throws gives 500 and the server keeps working", "[unit]") {
  HttpHandlers handlers = simple_handlers();
  std::atomic<bool> fail{true};
  handlers.metrics = [&fail]() -> std::string {
    if (fail) throw std::runtime_error("registry exploded");
    return "fine 1\n";
  };
  handlers.status = []() -> std::string { throw 42; };
  Fixture fixture(handlers);
  CHECK(get(fixture.port(), "/metrics").status == 500);
  CHECK(get(fixture.port(), "/status").status == 500);
  fail = false;
  auto metrics = get(fixture.port(), "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body == "fine 1\n");
}

TEST_CASE("http: a port in use or a bad address is a clear error", "[unit]") {
  boost::asio::io_context io;
  auto first = HttpServer::start(io, "127.0.0.1", 0, simple_handlers());
  REQUIRE(first);
  auto port = first.value()->port();
  CHECK(port != 0);
  auto second = HttpServer::start(io, "127.0.0.1", port, simple_handlers());
  REQUIRE_FALSE(second);
  CHECK(second.error().kind == substrate::ErrorKind::io_error);
  CHECK_THAT(second.error().message, Catch::Contains("127.0.0.1:" + std::to_string(port)));
  CHECK_THAT(second.error().message, Catch::Contains("in use"));

  auto bad = HttpServer::start(io, "300.1.2.3", 0, simple_handlers());
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == substrate::ErrorKind::invalid_argument);
  CHECK_THAT(bad.error().message, Catch::Contains("300.1.2.3:0"));
}

TEST_CASE("http: stop closes the listener and live connections", "[unit]") {
  Fixture fixture(simple_handlers());
  auto port = fixture.port();
  Client idle(port);
  REQUIRE(idle.connected());
  CHECK(get(port, "/healthz").status == 200);  // the idle connection has been accepted by now
  fixture.stop();
  CHECK(idle.closed_within(2000ms));
  Client late(port);
  CHECK_FALSE(late.connected());
}

// ---- TLS and basic auth (web configuration), with curl as the client --------------------------

namespace {

struct CurlResult {
  int exit_code = -1;
  Reply reply;
  std::string raw;
};

// `curl -sS -i` against https://localhost:PORT with the test PKI's CA; `args` adds credentials,
// client certificates or TLS version limits.
CurlResult curl(std::uint16_t port, const std::string& path, const std::string& args = "") {
  const std::string& pki = test_pki_dir();
  const std::string command = "curl -sS -i --max-time 5 --cacert " + pki + "/ca.crt " + args +
                              " https://localhost:" + std::to_string(port) + path + " 2>&1";
  CurlResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.raw.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.reply = parse(result.raw);
  return result;
}

std::string tls_yaml(const std::string& extra = "") {
  return "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra;
}

}  // namespace

TEST_CASE("http tls: basic auth: right password 200, wrong or none 401 with WWW-Authenticate, /healthz open", "[e2e]") {
  const std::string hash = bcrypt_hash("s3cret");
  Fixture fixture(simple_handlers(), {},
                  web_security("auth.yml", tls_yaml() + "basic_auth_users:\n  prometheus: " + hash + "\n"));
  const auto port = fixture.port();

  auto good = curl(port, "/metrics", "-u prometheus:s3cret");
  CHECK(good.exit_code == 0);
  CHECK(good.reply.status == 200);
  CHECK(good.reply.body == "substrate_up_test 1\n");
  CHECK(curl(port, "/status", "-u prometheus:s3cret").reply.status == 200);

  for (std::string credentials : {"-u prometheus:wrong", "-u nobody:s3cret", "-u prometheus:", ""}) {
    INFO(credentials);
    auto denied = curl(port, "/metrics", credentials);
    CHECK(denied.reply.status == 401);
    CHECK_THAT(denied.reply.header("WWW-Authenticate").value_or(""), Catch::StartsWith("Basic realm="));
    CHECK(denied.reply.body.find("substrate_up_test") == std::string::npos);
    CHECK(curl(port, "/status", credentials).reply.status == 401);
    CHECK(curl(port, "/nowhere", credentials).reply.status == 401);  // no path probing without credentials
  }
  // Malformed Authorization values are a 401, never a crash.
  for (std::string header : {"Basic", "Basic !!!!", "Basic cHJvbWV0aGV1cw==", "Bearer abc", "basic "}) {
    INFO(header);
    CHECK(curl(port, "/metrics", "-H 'Authorization: " + header + "'").reply.status == 401);
  }
  auto health = curl(port, "/healthz");
  CHECK(health.reply.status == 200);
  CHECK(health.reply.body == "ok\n");
  CHECK(curl(port, "/metrics", "-u prometheus:s3cret").reply.status == 200);  // the cached check still holds
}

TEST_CASE("http tls: plain HTTP to the TLS port gets a plain 400; TLS keeps working", "[e2e]") {
  Fixture fixture(simple_handlers(), {}, web_security("tls.yml", tls_yaml()));
  const auto port = fixture.port();
  auto plain = get(port, "/metrics");
  CHECK(plain.status == 400);
  CHECK_THAT(plain.body, Catch::Contains("HTTP request to an HTTPS server"));
  CHECK(get(port, "/healthz").status == 400);
  auto tls = curl(port, "/metrics");
  CHECK(tls.exit_code == 0);
  CHECK(tls.reply.status == 200);
  // A TLS record that is no valid ClientHello: the handshake fails, the connection is closed at
  // once (before the 5 s receive timeout) without an HTTP answer, and the loop still serves.
  {
    Client garbage(port);
    REQUIRE(garbage.connected());
    // A 64-byte handshake record holding a 60-byte ClientHello (what Beast's sniffing checks) of junk.
    REQUIRE(garbage.send(std::string("\x16\x03\x01\x00\x40\x01\x00\x00\x3c", 9) + std::string(60, '\xff')));
    const auto start = std::chrono::steady_clock::now();
    const std::string answer = garbage.read_all();
    CHECK(std::chrono::steady_clock::now() - start < 4s);
    CHECK(answer.find("HTTP/") == std::string::npos);
  }
  CHECK(curl(port, "/healthz").reply.status == 200);
}

TEST_CASE("http tls: client certificates required: the CA's client is served, none or a foreign one refused", "[e2e]") {
  Fixture fixture(simple_handlers(), {},
                  web_security("mtls.yml", tls_yaml("  client_ca_file: ca.crt\n"
                                                    "  client_auth_type: RequireAndVerifyClientCert\n")));
  const auto port = fixture.port();
  const std::string& pki = test_pki_dir();
  auto with_cert = curl(port, "/metrics", "--cert " + pki + "/client.crt --key " + pki + "/client.key");
  CHECK(with_cert.exit_code == 0);
  CHECK(with_cert.reply.status == 200);
  auto without = curl(port, "/metrics");
  CHECK(without.exit_code != 0);
  CHECK(without.reply.status == 0);
  auto foreign = curl(port, "/metrics", "--cert " + pki + "/other-client.crt --key " + pki + "/other-client.key");
  CHECK(foreign.exit_code != 0);
  CHECK(foreign.reply.status == 0);
  CHECK(curl(port, "/healthz", "--cert " + pki + "/client.crt --key " + pki + "/client.key").reply.status == 200);
}

TEST_CASE("http tls: min_version TLS13 refuses a TLS 1.2 client", "[e2e]") {
  Fixture fixture(simple_handlers(), {}, web_security("tls13.yml", tls_yaml("  min_version: TLS13\n")));
  auto old_client = curl(fixture.port(), "/metrics", "--tls-max 1.2");
  CHECK(old_client.exit_code != 0);
  CHECK(old_client.reply.status == 0);
  auto current = curl(fixture.port(), "/metrics", "--tlsv1.3");
  CHECK(current.exit_code == 0);
  CHECK(current.reply.status == 200);
}

TEST_CASE("http tls: a client that stalls before or in the handshake is cut off at the head deadline", "[e2e]") {
  HttpLimits limits;
  limits.head_timeout_seconds = 0.5;
  Fixture fixture(simple_handlers(), limits, web_security("tls.yml", tls_yaml()));
  const auto port = fixture.port();
  Client silent(port);
  Client half_hello(port);
  REQUIRE(silent.connected());
  REQUIRE(half_hello.connected());
  REQUIRE(half_hello.send(std::string("\x16\x03\x01\x02\x00\x01\x00", 7)));  // a ClientHello that never ends
  CHECK(silent.closed_within(3000ms));
  CHECK(half_hello.closed_within(3000ms));
  CHECK(curl(port, "/healthz").reply.status == 200);
}

TEST_CASE("http tls: set_security moves new connections to TLS with auth; a plain endpoint before", "[e2e]") {
  Fixture fixture(simple_handlers());
  const auto port = fixture.port();
  CHECK(get(port, "/metrics").status == 200);
  fixture.set_security(
      web_security("reload.yml", tls_yaml() + "basic_auth_users:\n  scraper: " + bcrypt_hash("pw") + "\n"));
  CHECK(get(port, "/metrics").status == 400);  // plain HTTP now meets TLS
  CHECK(curl(port, "/metrics").reply.status == 401);
  CHECK(curl(port, "/metrics", "-u scraper:pw").reply.status == 200);
  fixture.set_security(nullptr);
  CHECK(get(port, "/metrics").status == 200);
}

TEST_CASE("http: gzip when the scraper accepts it (RFC 9110 12.5.3), plain otherwise", "[unit]") {
  HttpHandlers handlers = simple_handlers();
  handlers.metrics = [] { return big_metrics(); };
  Fixture fixture(handlers);
  auto request = [&](const std::string& accept) {
    return http_exchange(fixture.port(),
                         "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + accept + "\r\n");
  };
  auto gunzip = [](const std::string& body) {
    z_stream zs{};
    REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
    std::string out(4 << 20, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
    zs.avail_in = static_cast<uInt>(body.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    out.resize(zs.total_out);
    inflateEnd(&zs);
    return out;
  };
  for (std::string accept :
       {"Accept-Encoding: gzip\r\n", "Accept-Encoding: deflate, GZIP;q=0.5\r\n", "Accept-Encoding: *\r\n"}) {
    INFO(accept);
    auto zipped = request(accept);
    CHECK(zipped.status == 200);
    CHECK(zipped.header("Content-Encoding") == "gzip");
    CHECK(zipped.header("Vary") == "Accept-Encoding");
    CHECK(zipped.body.size() * 5 < big_metrics().size());
    CHECK(gunzip(zipped.body) == big_metrics());
  }
  for (std::string accept : {"", "Accept-Encoding: gzip;q=0\r\n", "Accept-Encoding: br, identity\r\n"}) {
    INFO(accept);
    auto plain = request(accept);
    CHECK(plain.status == 200);
    CHECK_FALSE(plain.header("Content-Encoding"));
    CHECK(plain.body == big_metrics());
  }
}
