#pragma once
// Runs a real daemon process on loopback for tests: a temp directory with its config, state and
// runtime dirs, a free port, plain HTTP GETs, real signals. The destructor kills what it started.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/scrape.hpp"

namespace substrate::testing {

inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

inline HttpReply http_get(std::uint16_t port, const std::string& path) {
  HttpReply reply;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return reply;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return reply;
  }
  std::string raw;
  char buffer[8192];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) raw.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  if (raw.rfind("HTTP/1.1 ", 0) != 0) return reply;
  reply.status = std::atoi(raw.c_str() + 9);
  const auto body = raw.find("\r\n\r\n");
  if (body != std::string::npos) reply.body = raw.substr(body + 4);
  return reply;
}

inline bool wait_until(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

class DaemonProcess {
 public:
  // `probes_yaml` is the `probes:` mapping's body (indented by 2).
  explicit DaemonProcess(const std::string& probes_yaml, const std::string& extra_yaml = "")
      : dir_(std::filesystem::temp_directory_path() /
             ("substrated-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))),
        port_(free_port()) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    probes_yaml_ = probes_yaml;
    extra_yaml_ = extra_yaml;
    write_config(probes_yaml);
  }
  ~DaemonProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  void write_config(const std::string& probes_yaml) {
    std::ofstream out(config_path());
    out << "listen:\n  address: 127.0.0.1\n  port: " << port_ << "\n"
        << "state_directory: " << (dir_ / "state").string() << "\n"
        << "runtime_directory: " << (dir_ / "run").string() << "\n"
        << "max_duty_cycle: 1.0\njitter_ratio: 0.0\nshutdown_grace_seconds: 5\nlog_level: debug\n"
        << "verdict:\n  slowdown_ratio: 100\n"
        // One pass per round unless a test asks for coverage: the tests count rounds and runs,
        // and at max_duty_cycle 1 repeated passes would fill half the wall time.
        << (extra_yaml_.find("coverage:") == std::string::npos ? "coverage:\n  duty_share: 0\n" : "") << extra_yaml_
        << "probes:\n"
        << probes_yaml;
  }
  void write_raw_config(const std::string& text) { std::ofstream(config_path()) << text; }

  // Starts `binary serve --config <config>` (or `binary <mode> --config <config>` for the test daemon).
  // With `output_fd` >= 0 the daemon's stdout and stderr go there instead of daemon.log.
  // `extra` arguments follow the config (e.g. {"--log.format", "json"}).
  void start(const std::string& binary = SUBSTRATE_BINARY, const std::string& command = "serve", int output_fd = -1,
             const std::vector<std::string>& extra = {}) {
    std::fflush(nullptr);  // or the child repeats the parent's buffered output
    pid_ = ::fork();
    if (pid_ == 0) {
      if (output_fd >= 0) {
        ::dup2(output_fd, STDERR_FILENO);
        ::dup2(output_fd, STDOUT_FILENO);
      } else {
        const std::string log = (dir_ / "daemon.log").string();
        std::freopen(log.c_str(), "a", stderr);
        std::freopen(log.c_str(), "a", stdout);
      }
      const std::string config = config_path();
      std::vector<const char*> argv{binary.c_str(), command.c_str(), "--config", config.c_str()};
      for (const std::string& arg : extra) argv.push_back(arg.c_str());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), const_cast<char* const*>(argv.data()));
      std::_Exit(127);
    }
  }
  bool wait_ready() {
    return wait_until([&] { return http_get(port_, "/healthz").status == 200 || !alive(); },
                      std::chrono::seconds(30)) &&
           alive();
  }
  bool alive() {
    if (pid_ <= 0) return false;
    int status;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      return false;
    }
    return true;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Exit code, or -1 when still running after `limit`.
  int wait_exit(std::chrono::seconds limit) {
    wait_until([&] { return !alive(); }, limit);
    return pid_ > 0 ? -1 : exit_code_;
  }
  std::string metrics() { return http_get(port_, "/metrics").body; }
  // Scrapes /metrics until `series` (matched as series_value does) is at least `value`, for at
  // most `limit`; returns the last scrape either way, so the caller asserts on what it shows.
  std::string metrics_when_at_least(const std::string& series, double value, std::chrono::seconds limit) {
    std::string scrape;
    wait_until(
        [&] {
          scrape = metrics();
          return series_value(scrape, series).value_or(0) >= value;
        },
        limit);
    return scrape;
  }
  std::string log() const {
    std::ifstream in(dir_ / "daemon.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // The processes whose parent is the daemon (its workers), by pid.
  std::vector<pid_t> children() const { return children_of(pid_); }
  static std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> found;
    if (parent <= 0) return found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent && state != 'Z') {
        found.push_back(static_cast<pid_t>(std::stoi(name)));
      }
    }
    return found;
  }
  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  std::string config_path() const { return (dir_ / config_name_).string(); }
  // The config file's name inside the test directory (any bytes but '/'); call before write_config.
  void use_config_name(const std::string& name) { config_name_ = name; }
  std::string socket_path() const { return (dir_ / "run" / "control.sock").string(); }
  std::filesystem::path state_path() const { return dir_ / "state" / "state.json"; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path dir_;
  std::uint16_t port_;
  std::string probes_yaml_, extra_yaml_;
  std::string config_name_ = "substrated.yaml";
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace substrate::testing
