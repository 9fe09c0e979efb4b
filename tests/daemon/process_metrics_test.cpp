// Self-metrics: /proc/self/stat parsing, the process_* families read from the real /proc, and a
// real daemon's scrape (process_* present, build_info with the git revision, promtool clean,
// gzip when asked for).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "daemon/process_metrics.hpp"
#include "tests/support/daemon_process.hpp"

namespace {

std::map<std::string, double> values(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> out;
  for (const auto& family : families) {
    REQUIRE(family.metric.size() == 1);
    const auto& metric = family.metric.front();
    out[family.name] = family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
  }
  return out;
}

}  // namespace

TEST_CASE("process metrics: /proc/<pid>/stat fields are counted after the command's last parenthesis", "[unit]") {
  substrate::ProcStat stat;
  // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24)
  const std::string text =
      "4242 (sub strated) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 123456 987654321 777 "
      "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
  REQUIRE(substrate::parse_proc_stat(text, stat));
  CHECK(stat.utime_ticks == 250);
  CHECK(stat.stime_ticks == 50);
  CHECK(stat.starttime_ticks == 123456);
  CHECK(stat.vsize_bytes == 987654321);
  CHECK(stat.rss_pages == 777);
  CHECK_FALSE(substrate::parse_proc_stat("4242 no parenthesis S 1", stat));
  CHECK_FALSE(substrate::parse_proc_stat("4242 (short) S 1 2 3", stat));
  CHECK_FALSE(substrate::parse_proc_stat(
      "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 50 0 0 20 0 3 0 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0", stat));
}

TEST_CASE("process metrics: the standard process_* values of this process are plausible", "[unit]") {
  const auto started = std::chrono::steady_clock::now();
  auto v = values(substrate::process_metric_families(started));
  REQUIRE(v.count("process_resident_memory_bytes"));
  CHECK(v["process_resident_memory_bytes"] > 1 << 20);
  CHECK(v["process_virtual_memory_bytes"] >= v["process_resident_memory_bytes"]);
  CHECK(v["process_cpu_seconds_total"] > 0);
  CHECK(v["process_open_fds"] >= 3);
  CHECK(v["process_max_fds"] >= v["process_open_fds"]);
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(v["process_start_time_seconds"] <= now + 1);
  CHECK(v["process_start_time_seconds"] > now - 86400);  // this test process started today
  CHECK(v["substrate_scrape_collect_seconds"] >= 0);
  CHECK(v["substrate_scrape_collect_seconds"] < 10);
}

TEST_CASE("process metrics: without /proc only what getrlimit gives is exported, never zeros", "[unit]") {
  auto v = values(substrate::process_metric_families(std::chrono::steady_clock::now(), "/nonexistent"));
  CHECK(v.count("process_resident_memory_bytes") == 0);
  CHECK(v.count("process_open_fds") == 0);
  CHECK(v.count("process_start_time_seconds") == 0);
  CHECK(v.count("process_max_fds") == 1);
  CHECK(v.count("substrate_scrape_collect_seconds") == 1);
}

TEST_CASE("process metrics: a real daemon's scrape has them, build_info has the revision, promtool is clean, gzip",
          "[e2e]") {
  using namespace std::chrono_literals;
  substrate::testing::DaemonProcess daemon(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n");
  daemon.start();
  REQUIRE(daemon.wait_ready());
  const std::string scrape = daemon.metrics();
  INFO(scrape.substr(0, 2000));
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_max_fds ", "process_start_time_seconds ", "substrate_scrape_collect_seconds "}) {
    CHECK(scrape.find(std::string("\n") + name) != std::string::npos);
  }
  const auto info = scrape.find("substrate_build_info{");
  REQUIRE(info != std::string::npos);
  const std::string line = scrape.substr(info, scrape.find('\n', info) - info);
  CHECK_THAT(line, Catch::Matches(R"re(.*revision="([0-9a-f]{12}|unknown)".*)re"));

  const std::string file = (daemon.dir() / "scrape.prom").string();
  std::ofstream(file) << scrape;
  CHECK(std::system(("promtool check metrics < " + file + " > " + file + ".out 2>&1").c_str()) == 0);
  std::ifstream lint(file + ".out");
  CHECK(std::string(std::istreambuf_iterator<char>(lint), {}).empty());

  // curl --compressed sends Accept-Encoding and inflates; -D shows the Content-Encoding it got.
  const std::string url = "http://127.0.0.1:" + std::to_string(daemon.port()) + "/metrics";
  const std::string command = "curl -sS --compressed -D " + file + ".head -o " + file + ".gz.out " + url;
  REQUIRE(std::system(command.c_str()) == 0);
  std::ifstream head(file + ".head");
  CHECK_THAT(std::string(std::istreambuf_iterator<char>(head), {}), Catch::Contains("Content-Encoding: gzip"));
  std::ifstream inflated(file + ".gz.out");
  CHECK_THAT(std::string(std::istreambuf_iterator<char>(inflated), {}),
             Catch::Contains("# TYPE process_cpu_seconds_total counter"));
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(20s) == 0);
}
