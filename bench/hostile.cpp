// /metrics latency of `substrated serve` idle and while hostile clients hold connections open
// (issue 17): C connections that each send a request head one byte per second (slowloris),
// reconnecting whenever the daemon closes them. Both conditions are measured in one run against
// one daemon, one after the other, and printed side by side as p50/p99 and answers other than 200.
//
//   bench_hostile --substrated PATH [--scrapes N] [--connections C] [--settle S]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "bench/common.hpp"

extern char** environ;

namespace {

int connect_to(std::uint16_t port, bool nonblocking) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One GET; the status code (0: no answer) and the seconds it took.
std::pair<int, double> get(std::uint16_t port, const std::string& path) {
  const double start = bench::now_seconds();
  const int fd = connect_to(port, false);
  if (fd < 0) return {0, bench::now_seconds() - start};
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
  std::string reply;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) > 0) {
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const int status = reply.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(reply.c_str() + 9) : 0;
  return {status, bench::now_seconds() - start};
}

struct Figures {
  double p50_ms, p99_ms;
  int not_ok;
};

Figures scrape(std::uint16_t port, long long count) {
  std::vector<double> seconds;
  int not_ok = 0;
  for (long long i = 0; i < count; ++i) {
    const auto [status, took] = get(port, "/metrics");
    seconds.push_back(took);
    if (status != 200) ++not_ok;
  }
  return {bench::percentile(seconds, 50) * 1e3, bench::percentile(seconds, 99) * 1e3, not_ok};
}

// Keeps `count` slowloris connections open until `stop`: each sends one byte of an endless request
// head per second and is replaced as soon as the daemon closes it. Counts the replacements.
void slowloris(std::uint16_t port, int count, const std::atomic<bool>& stop, std::atomic<long>& reconnects) {
  std::vector<int> fds(static_cast<std::size_t>(count), -1);
  const std::string head = "GET /metrics HTTP/1.1\r\nX-Slow: ";
  std::vector<std::size_t> sent(fds.size(), 0);
  while (!stop) {
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i] < 0) {
        fds[i] = connect_to(port, true);
        sent[i] = 0;
        continue;
      }
      char b;
      const ssize_t n = ::recv(fds[i], &b, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN && errno != EINPROGRESS)) {
        ::close(fds[i]);
        fds[i] = -1;
        ++reconnects;
        continue;
      }
      const char byte = sent[i] < head.size() ? head[sent[i]] : 'a';
      if (::send(fds[i], &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++sent[i];
    }
    for (int tick = 0; tick < 10 && !stop; ++tick) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      "usage: bench_hostile --substrated PATH [--scrapes N (300)] [--connections C (1000)] [--settle S (5)]\n";
  bench::Args args(argc, argv, {}, usage);
  const std::string binary = args.get("--substrated", "");
  if (binary.empty()) bench::Args::die(usage);
  const long long scrapes = args.get_int("--scrapes", 300);
  const int connections = static_cast<int>(args.get_int("--connections", 1000));
  const double settle = args.get_double("--settle", 5);

  const std::string start_load = bench::load_average();
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  const auto dir = std::filesystem::temp_directory_path() / ("substrated-bench-hostile-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  // A free port: bind to 0 and read it back.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(listener);
  const std::uint16_t port = ntohs(address.sin_port);
  const std::string config = (dir / "config.yaml").string();
  std::ofstream(config) << "listen:\n  address: 127.0.0.1\n  port: " << port
                        << "\nstate_directory: " << (dir / "state").string()
                        << "\nruntime_directory: " << (dir / "run").string()
                        << "\nlog_level: warn\nprobes:\n  gemm:\n    enabled: false\n  attention:\n    enabled: false\n"
                           "  memory:\n    enabled: false\n  canary:\n    enabled: false\n";
  pid_t pid = 0;
  std::vector<std::string> words = {binary, "serve", "--config", config};
  std::vector<char*> argv_daemon;
  for (auto& w : words) argv_daemon.push_back(w.data());
  argv_daemon.push_back(nullptr);
  if (::posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv_daemon.data(), environ) != 0) {
    bench::Args::die("cannot start " + binary);
  }
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    up = get(port, "/healthz").first == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!up) bench::Args::die("the daemon did not answer /healthz within 30 s");

  const Figures idle = scrape(port, scrapes);
  std::atomic<bool> stop{false};
  std::atomic<long> reconnects{0};
  std::thread hostile(slowloris, port, connections, std::cref(stop), std::ref(reconnects));
  std::this_thread::sleep_for(std::chrono::duration<double>(settle));
  const Figures loaded = scrape(port, scrapes);
  const int healthz = get(port, "/healthz").first;
  stop = true;
  hostile.join();
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);

  std::string command;
  for (int i = 0; i < argc; ++i) command += std::string(i ? " " : "") + argv[i];
  std::cout << "## /metrics under hostile connections\n\n"
            << "- date: " << bench::utc_timestamp() << ", load average " << start_load << " at start, "
            << bench::load_average() << " at end\n"
            << "- machine: nproc " << sysconf(_SC_NPROCESSORS_ONLN) << ", " << bench::cpu_model() << "\n"
            << "- command: " << command << "\n"
            << "- " << scrapes << " sequential scrapes per condition, one daemon, one run; " << connections
            << " slowloris connections (1 byte/s, reconnecting; " << reconnects.load() << " reconnects), "
            << "/healthz under them: " << healthz << "\n\n"
            << "| condition | p50 ms | p99 ms | answers other than 200 |\n|---|---|---|---|\n";
  std::printf("| idle | %.2f | %.2f | %d |\n", idle.p50_ms, idle.p99_ms, idle.not_ok);
  std::printf("| %d slowloris connections | %.2f | %.2f | %d |\n", connections, loaded.p50_ms, loaded.p99_ms,
              loaded.not_ok);
  std::printf("| ratio (hostile / idle) | %.2f | %.2f | |\n", loaded.p50_ms / idle.p50_ms, loaded.p99_ms / idle.p99_ms);
  return 0;
}
