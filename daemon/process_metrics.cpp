// Process self-metrics from /proc (see daemon/process_metrics.hpp).
#include "daemon/process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "common/file_io.hpp"

namespace substrate {
namespace {

prometheus::MetricFamily family(const std::string& name, const std::string& help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter)
    metric.counter.value = value;
  else
    metric.gauge.value = value;
  return prometheus::MetricFamily{name, help, type, {metric}};
}

// btime of /proc/stat: the boot time in Unix seconds; negative when absent.
double boot_time(const std::string& proc_root) {
  auto text = read_file(proc_root + "/stat", 1 << 20);
  if (!text) return -1;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  return -1;
}

}  // namespace

bool parse_proc_stat(const std::string& text, ProcStat& out) {
  const auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 1));
  // Fields 3.. of proc(5); index 0 here is field 3 (state).
  std::vector<std::string> f;
  for (std::string word; fields >> word;) f.push_back(word);
  if (f.size() < 22) return false;
  auto number = [&](std::size_t field, double& value) {
    char* end = nullptr;
    value = std::strtod(f[field - 3].c_str(), &end);
    return end && *end == '\0';
  };
  return number(14, out.utime_ticks) && number(15, out.stime_ticks) && number(22, out.starttime_ticks) &&
         number(23, out.vsize_bytes) && number(24, out.rss_pages);
}

std::vector<prometheus::MetricFamily> process_metric_families(std::chrono::steady_clock::time_point scrape_started,
                                                              const std::string& proc_root) {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  ProcStat stat;
  if (auto text = read_file(proc_root + "/self/stat", 1 << 16); text && parse_proc_stat(*text, stat) && ticks > 0) {
    out.push_back(family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                         MetricType::Counter, (stat.utime_ticks + stat.stime_ticks) / ticks));
    out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
                         stat.rss_pages * static_cast<double>(::sysconf(_SC_PAGESIZE))));
    out.push_back(
        family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge, stat.vsize_bytes));
    if (const double boot = boot_time(proc_root); boot >= 0)
      out.push_back(family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                           MetricType::Gauge, boot + stat.starttime_ticks / ticks));
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator(proc_root + "/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  // The iterator's own descriptor is counted while it is open, as client_golang's is.
  if (!ec) out.push_back(family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    out.push_back(family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
                         static_cast<double>(limit.rlim_cur)));
  out.push_back(family("substrate_scrape_collect_seconds",
                       "Time this scrape took to collect its metrics (serialising the text not included).",
                       MetricType::Gauge,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - scrape_started).count()));
  return out;
}

}  // namespace substrate
