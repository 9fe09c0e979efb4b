// Control socket tests over real Unix sockets in a temporary directory: the server runs on an
// io_context on its own thread; clients are control_request() or raw POSIX sockets.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "daemon/control_socket.hpp"
#include "tests/support/server_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using namespace substrate::testing;
using nlohmann::json;
using substrate::control_request;
using substrate::ControlHandler;
using substrate::ControlLimits;
using substrate::ControlServer;
using substrate::ErrorKind;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "substrate-ctl-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A server on its own loop thread; stopped on the loop before the loop ends.
class Fixture {
 public:
  Fixture(const std::string& path, ControlHandler handler, ControlLimits limits = {}) {
    std::unique_ptr<ControlServer> server;
    loop_.on_loop([&] {
      auto started = ControlServer::start(loop_.io(), path, std::move(handler), limits);
      if (started)
        server = std::move(started.value());
      else
        error_ = started.error().message;
    });
    if (!server) FAIL("start: " << error_);
    server_ = std::move(server);
  }
  ~Fixture() { stop(); }
  void stop() {
    if (server_) loop_.on_loop([this] { server_.reset(); });
  }

 private:
  LoopThread loop_;
  std::unique_ptr<ControlServer> server_;
  std::string error_;
};

ControlHandler echo_handler() {
  return [](const json& request, std::function<void(json)> reply) { reply(json{{"ok", true}, {"echo", request}}); };
}

// Sends raw bytes, then returns everything the server says until it closes (5 s at most).
std::string raw_exchange(const std::string& path, const std::string& data) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  set_io_timeouts(fd);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  // A server may refuse part way (oversized request) and still reply: read whatever it says.
  send_all(fd, data);
  std::string in = receive_until_closed(fd);
  ::close(fd);
  return in;
}

json error_of(const std::string& raw) {
  REQUIRE(!raw.empty());
  CHECK(raw.back() == '\n');
  auto reply = json::parse(raw);
  CHECK(reply.at("ok") == false);
  return reply;
}

void check_alive(const std::string& path) {
  auto reply = control_request(path, json{{"command", "status"}}, 5.0);
  REQUIRE(reply);
  CHECK(reply.value().at("ok") == true);
  CHECK(reply.value().at("echo").at("command") == "status");
}

}  // namespace

TEST_CASE("control: a request and its reply round trip", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  Fixture fixture(path, echo_handler());
  auto reply = control_request(path, json{{"command", "probe"}, {"args", {"--kernel", "gemm"}}}, 5.0);
  REQUIRE(reply);
  CHECK(reply.value().at("ok") == true);
  CHECK(reply.value().at("echo").at("args") == json({"--kernel", "gemm"}));
}

TEST_CASE("control: the socket file has mode 0660 and stop removes it", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  {
    Fixture fixture(path, echo_handler());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("control: a reply completed later from another thread; a second reply is ignored", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  std::mutex mutex;
  std::vector<std::thread> workers;
  Fixture fixture(path, [&](const json& request, std::function<void(json)> reply) {
    std::lock_guard lock(mutex);
    workers.emplace_back([request, reply] {
      std::this_thread::sleep_for(150ms);
      reply(json{{"ok", true}, {"late", request.at("command")}});
      reply(json{{"ok", false}, {"error", "second reply"}});
    });
  });
  auto started = std::chrono::steady_clock::now();
  auto reply = control_request(path, json{{"command", "probe"}}, 5.0);
  REQUIRE(reply);
  CHECK(std::chrono::steady_clock::now() - started >= 140ms);
  CHECK(reply.value() == json({{"ok", true}, {"late", "probe"}}));
  auto again = control_request(path, json{{"command", "status"}}, 5.0);  // answered from a thread too
  REQUIRE(again);
  CHECK(again.value() == json({{"ok", true}, {"late", "status"}}));
  for (auto& worker : workers) worker.join();
}

TEST_CASE("control: a reply after the client gave up is harmless", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  std::promise<std::function<void(json)>> parked;
  std::atomic<bool> first{true};
  Fixture fixture(path, [&](const json& request, std::function<void(json)> reply) {
    if (first.exchange(false))
      parked.set_value(std::move(reply));
    else
      reply(json{{"ok", true}, {"echo", request}});
  });
  auto reply = control_request(path, json{{"command", "probe"}}, 0.2);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().kind == ErrorKind::timeout);
  auto late = parked.get_future().get();
  std::thread([late] { late(json{{"ok", true}}); }).join();
  check_alive(path);
}

TEST_CASE("control: malformed, non-object, command-less and oversized requests get errors", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  Fixture fixture(path, echo_handler());

  auto invalid = error_of(raw_exchange(path, "{not json\n"));
  CHECK_THAT(invalid.at("error").get<std::string>(), Catch::Contains("invalid JSON"));
  check_alive(path);

  auto array = error_of(raw_exchange(path, "[1,2,3]\n"));
  CHECK_THAT(array.at("error").get<std::string>(), Catch::Contains("object"));

  auto missing = error_of(raw_exchange(path, "{\"args\":[]}\n"));
  CHECK_THAT(missing.at("error").get<std::string>(), Catch::Contains("command"));

  auto number = error_of(raw_exchange(path, "{\"command\":7}\n"));
  CHECK_THAT(number.at("error").get<std::string>(), Catch::Contains("string"));

  auto binary = error_of(raw_exchange(path, std::string("\xff\xfe\x00\x01\n", 5)));
  CHECK_THAT(binary.at("error").get<std::string>(), Catch::Contains("invalid JSON"));

  auto oversized = error_of(raw_exchange(path, "{\"command\":\"" + std::string(70 * 1024, 'x') + "\"}\n"));
  CHECK_THAT(oversized.at("error").get<std::string>(), Catch::Contains("too large"));

  auto nested = raw_exchange(path, std::string(30000, '[') + std::string(30000, ']') + "\n");
  CHECK(error_of(nested).at("error").get<std::string>().size() > 0);

  check_alive(path);
}

TEST_CASE("control: a silent client gets a timeout error and others are still answered", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  ControlLimits limits;
  limits.read_timeout_seconds = 0.3;
  Fixture fixture(path, echo_handler(), limits);
  std::string silent_reply;
  std::thread silent([&] { silent_reply = raw_exchange(path, ""); });
  std::this_thread::sleep_for(50ms);
  check_alive(path);
  silent.join();
  auto reply = error_of(silent_reply);
  CHECK_THAT(reply.at("error").get<std::string>(), Catch::Contains("timeout"));
  check_alive(path);
}

TEST_CASE("control: a handler that throws or drops the reply gives an error reply", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  Fixture fixture(path, [](const json& request, std::function<void(json)> reply) {
    auto command = request.at("command").get<std::string>();
    if (command == "throw") throw std::runtime_error("boom");
    if (command == "drop") return;
    reply(json{{"ok", true}, {"echo", request}});
  });
  auto thrown = control_request(path, json{{"command", "throw"}}, 5.0);
  REQUIRE(thrown);
  CHECK(thrown.value().at("ok") == false);
  CHECK_THAT(thrown.value().at("error").get<std::string>(), Catch::Contains("boom"));
  auto dropped = control_request(path, json{{"command", "drop"}}, 5.0);
  REQUIRE(dropped);
  CHECK(dropped.value().at("ok") == false);
  check_alive(path);
}

TEST_CASE("control: a stale socket file is replaced; a live listener is not stolen", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  {
    // Leave a socket file behind with nobody listening, as a killed daemon would.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    ::close(fd);
    REQUIRE(std::filesystem::exists(path));
  }
  Fixture fixture(path, echo_handler());
  check_alive(path);

  boost::asio::io_context other;
  auto second = ControlServer::start(other, path, echo_handler());
  REQUIRE_FALSE(second);
  CHECK(second.error().kind == ErrorKind::unavailable);
  CHECK(second.error().message == "another substrated is listening on " + path);
  check_alive(path);
}

TEST_CASE("control: a regular file at the socket path is left alone", "[unit]") {
  TempDir dir;
  auto path = dir.file("ctl.sock");
  std::ofstream(path) << "precious\n";
  boost::asio::io_context io;
  auto server = ControlServer::start(io, path, echo_handler());
  REQUIRE_FALSE(server);
  CHECK_THAT(server.error().message, Catch::Contains("not a socket"));
  CHECK(std::filesystem::file_size(path) == 9);
}

TEST_CASE("control: control_request without a daemon is unavailable", "[unit]") {
  TempDir dir;
  auto path = dir.file("missing.sock");
  auto reply = control_request(path, json{{"command", "status"}}, 1.0);
  REQUIRE_FALSE(reply);
  CHECK(reply.error().kind == ErrorKind::unavailable);
  CHECK(reply.error().message == "no daemon at " + path);
}
