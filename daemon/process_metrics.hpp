#pragma once
// The daemon's own health in the standard names every Prometheus client library exports
// (client_golang's process collector), read from /proc/self at scrape time, plus the time a
// scrape takes to collect:
//   process_cpu_seconds_total        utime + stime of /proc/self/stat, seconds
//   process_resident_memory_bytes    rss pages of /proc/self/stat times the page size
//   process_virtual_memory_bytes     vsize of /proc/self/stat
//   process_open_fds                 entries of /proc/self/fd
//   process_max_fds                  the soft RLIMIT_NOFILE
//   process_start_time_seconds       starttime of /proc/self/stat (clock ticks after boot) + btime
//                                    of /proc/stat, Unix seconds
//   substrate_scrape_collect_seconds time from the start of this scrape's collection to these
//                                    metrics (everything but serialising the text)
// A value /proc does not give (another kernel, a read error) is left out rather than exported as 0.
#include <chrono>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace substrate {

// The families above; `proc_root` replaces /proc for tests.
std::vector<prometheus::MetricFamily> process_metric_families(std::chrono::steady_clock::time_point scrape_started,
                                                              const std::string& proc_root = "/proc");

// Parses the fields process metrics need from the text of /proc/<pid>/stat (proc(5)): the
// command may contain spaces and parentheses, so fields are counted after its last ')'. False
// when the text is malformed.
struct ProcStat {
  double utime_ticks = 0, stime_ticks = 0, starttime_ticks = 0, vsize_bytes = 0, rss_pages = 0;
};
bool parse_proc_stat(const std::string& text, ProcStat& out);

}  // namespace substrate
