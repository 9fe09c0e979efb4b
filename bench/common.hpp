#pragma once
// Shared helpers for the benchmark programs: argument parsing, machine description, timing and
// percentiles. Header-only so each benchmark is one translation unit plus substrate_core.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "probes/backends/compute_device.hpp"
#include "probes/core/registry.hpp"

namespace bench {

// "--name value" and "--flag" arguments; anything else is an error.
class Args {
 public:
  Args(int argc, char** argv, const std::vector<std::string>& flags, const std::string& usage) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << usage;
        std::exit(0);
      }
      if (arg.rfind("--", 0) != 0) die("unexpected argument '" + arg + "'\n" + usage);
      if (std::find(flags.begin(), flags.end(), arg) != flags.end()) {
        values_[arg] = "1";
        continue;
      }
      if (i + 1 >= argc) die("option '" + arg + "' needs a value\n" + usage);
      values_[arg] = argv[++i];
    }
  }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  long long get_int(const std::string& name, long long fallback) const {
    return has(name) ? std::stoll(values_.at(name)) : fallback;
  }
  double get_double(const std::string& name, double fallback) const {
    return has(name) ? std::stod(values_.at(name)) : fallback;
  }
  [[noreturn]] static void die(const std::string& message) {
    std::cerr << "bench: " << message << "\n";
    std::exit(2);
  }

 private:
  std::map<std::string, std::string> values_;
};

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process (every thread, a Vulkan driver's among them), in seconds: blind
// to what other processes take from the cores, unlike device timestamps on a CPU device.
inline double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

inline std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The 1, 5 and 15 minute load averages, e.g. "3.12 2.80 2.41".
inline std::string load_average() {
  std::istringstream in(read_first_line("/proc/loadavg"));
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

inline std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

// p in [0, 100]; nearest-rank on a sorted copy. NaN for an empty set.
inline double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const std::size_t index = rank < 1 ? 0 : std::min(values.size() - 1, static_cast<std::size_t>(rank) - 1);
  return values[index];
}

// The first compute device (lavapipe here); exits 2 when there is none.
inline substrate::DevicePtr first_device() {
  substrate::Discovery found = substrate::discover_devices();
  if (found.devices.empty()) {
    std::string notes;
    for (const std::string& n : found.backend_notes) notes += "\n  " + n;
    Args::die("no compute device" + notes);
  }
  found.devices.front()->set_timeout_seconds(120);
  return std::move(found.devices.front());
}

// Header lines every benchmark prints: what ran where, with the load at the start.
inline void print_machine(std::ostream& out, const substrate::DeviceInfo& device, const std::string& command) {
  out << "- date: " << utc_timestamp() << "\n"
      << "- command: `" << command << "`\n"
      << "- machine: nproc " << sysconf(_SC_NPROCESSORS_ONLN) << ", " << cpu_model() << ", kernel "
      << read_first_line("/proc/sys/kernel/osrelease") << "\n"
      << "- device: " << device.id << " " << device.name << ", driver " << device.driver << ", Vulkan "
      << device.api_version << "\n"
      << "- load average at start: " << load_average() << "\n";
}

inline std::string command_line(int argc, char** argv) {
  std::string text;
  for (int i = 0; i < argc; ++i) text += (i ? " " : "") + std::string(argv[i]);
  return text;
}

// A spec for `probe` with the registry's size parser; exits 2 on a bad size.
inline substrate::ProbeSpec make_spec(const std::string& probe, substrate::Dtype dtype, substrate::Mode mode,
                                      const std::string& size, std::uint64_t seed) {
  const substrate::ProbeDescriptor* d = substrate::probe_registry().find(probe);
  if (!d) Args::die("unknown probe " + probe);
  substrate::ProbeSpec spec;
  spec.probe = probe;
  spec.dtype = dtype;
  spec.mode = mode;
  spec.seed = seed;
  auto applied = d->apply_size(size, spec);
  if (!applied) Args::die(applied.error().message);
  return spec;
}

inline std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

inline std::string sci(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

}  // namespace bench
