// YAML configuration: strict parsing and validation. Every problem is reported as
// "FILE:LINE:COLUMN: key 'a.b.c': what is wrong" with 1-based line and column, taken from the
// yaml-cpp node marks. The layout and every key are documented in docs/configuration.md.
#include "daemon/config.hpp"
#include "daemon/web_config.hpp"
#include "daemon/worker_protocol.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_set>

#include "common/file_io.hpp"
#include "probes/core/registry.hpp"

namespace substrate {
namespace {

constexpr std::size_t k_max_config_bytes = 1 << 20;

// Thrown inside the parser, turned into an Error at the top.
struct ConfigProblem {
  std::string message;
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key, const std::string& what) const {
    const int line = mark.is_null() ? 1 : mark.line + 1;
    const int column = mark.is_null() ? 1 : mark.column + 1;
    std::string message = source_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
    if (!key.empty()) message += "key '" + key + "': ";
    throw ConfigProblem{message + what};
  }
  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& what) const {
    // An empty value (`key:` and nothing) is marked where the next token starts, often the next
    // line: point at its key instead.
    fail(node.IsNull() && !null_key_mark_.is_null() ? null_key_mark_ : node.Mark(), key, what);
  }

  // Walks a mapping: every key must be a plain string from `allowed`, at most once. A null
  // value (`key:` with nothing after it) counts as an empty mapping.
  void for_each_key(const YAML::Node& map, const std::string& path, const std::vector<std::string>& allowed,
                    const std::function<void(const std::string&, const YAML::Node&, const std::string&)>& visit) {
    if (map.IsNull()) return;
    if (!map.IsMap()) fail(map, path, "expected a mapping, got " + describe(map));
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key_node = it->first;
      if (!key_node.IsScalar()) fail(key_node, path, "mapping keys must be plain strings");
      const std::string key = key_node.Scalar();
      const std::string key_path = path.empty() ? key : path + "." + key;
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail(key_node, key_path, "unknown key (expected one of: " + join(allowed) + ")");
      }
      if (!seen.insert(key).second) fail(key_node, key_path, "duplicate key");
      null_key_mark_ = it->second.IsNull() ? key_node.Mark() : YAML::Mark::null_mark();
      visit(key, it->second, key_path);
    }
  }

  static std::string describe(const YAML::Node& node) {
    if (node.IsNull()) return "null";
    if (node.IsSequence()) return "a sequence";
    if (node.IsMap()) return "a mapping";
    if (node.IsScalar()) return "'" + node.Scalar() + "'";
    return "nothing";
  }

  // A string however it was written: quoted ('5', "5": tag "!") or tagged `!!str 5`.
  static bool quoted(const YAML::Node& node) { return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str"; }

  std::string string_value(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expected a string, got " + describe(node));
    if (node.Scalar().empty()) fail(node, key, "must not be empty");
    return node.Scalar();
  }

  bool bool_value(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar() && !quoted(node)) {
      const std::string& text = node.Scalar();
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
    }
    fail(node, key, "expected true or false, got " + describe(node));
  }

  std::uint64_t uint_value(const YAML::Node& node, const std::string& key, std::uint64_t min, std::uint64_t max) const {
    if (!node.IsScalar() || quoted(node)) fail(node, key, "expected an integer, got " + describe(node));
    std::string text = node.Scalar();
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    std::uint64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec == std::errc::result_out_of_range) {
      fail(node, key, "must be in " + std::to_string(min) + ".." + std::to_string(max) + ", got " + node.Scalar());
    }
    if (text.empty() || ec != std::errc{} || ptr != end) {
      fail(node, key, "expected a non-negative integer, got " + describe(node));
    }
    if (value < min || value > max) {
      fail(node, key, "must be in " + std::to_string(min) + ".." + std::to_string(max) + ", got " + node.Scalar());
    }
    return value;
  }

  double number_value(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar() || quoted(node)) fail(node, key, "expected a number, got " + describe(node));
    const std::string& text = node.Scalar();
    const bool plain_decimal = !text.empty() && text.find_first_not_of("0123456789+-.eE") == std::string::npos;
    errno = 0;
    char* end = nullptr;
    const double value = plain_decimal ? std::strtod(text.c_str(), &end) : 0.0;
    if (!plain_decimal || end != text.c_str() + text.size()) {
      fail(node, key, "expected a number, got " + describe(node));
    }
    if (errno == ERANGE || !std::isfinite(value)) fail(node, key, "number out of range: " + text);
    return value;
  }

  // Range checks: `low_open` excludes the lower bound.
  double ranged(const YAML::Node& node, const std::string& key, double low, bool low_open, double high,
                bool high_open) const {
    const double value = number_value(node, key);
    const bool below = low_open ? !(value > low) : !(value >= low);
    const bool above = high_open ? !(value < high) : !(value <= high);
    if (below || above) {
      const std::string range = std::string(low_open ? "(" : "[") + format_number(low) + ", " +
                                (std::isinf(high) ? std::string("inf") : format_number(high)) + (high_open ? ")" : "]");
      fail(node, key, "must be in " + range + ", got " + node.Scalar());
    }
    return value;
  }

  Config parse(const YAML::Node& root) {
    Config config = default_config();
    config.source = source_;
    if (root.IsNull()) return config;
    if (!root.IsMap()) fail(root, "", "the top level must be a mapping of keys, got " + describe(root));
    // Where to report failures_to_fail < failures_to_degrade: at whichever of the two the file set.
    YAML::Mark order_mark = root.Mark();
    std::string order_key = "verdict";
    for_each_key(root, "",
                 {"listen",
                  "state_directory",
                  "runtime_directory",
                  "sysfs_root",
                  "devices",
                  "expected_devices",
                  "backend_preference",
                  "external_workers",
                  "jitter_ratio",
                  "max_duty_cycle",
                  "busy_utilization",
                  "max_staleness_seconds",
                  "shutdown_grace_seconds",
                  "log_level",
                  "failure_dump_max_bytes",
                  "golden_cache_max_bytes",
                  "on_demand",
                  "verdict",
                  "coverage",
                  "telemetry",
                  "kubelet",
                  "probes",
                  "probe_exclusive_gpus"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& path) {
                   if (key == "listen") {
                     parse_listen(value, path, config);
                   } else if (key == "state_directory") {
                     config.state_directory = string_value(value, path);
                   } else if (key == "runtime_directory") {
                     config.runtime_directory = string_value(value, path);
                     Config probe_path;
                     probe_path.runtime_directory = config.runtime_directory;
                     const std::string socket = control_socket_path(probe_path);
                     if (socket.size() > k_max_socket_path_bytes) {
                       fail(value, path,
                            "the control socket path " + socket + " would be " + std::to_string(socket.size()) +
                                " bytes; a Unix socket path holds at most " + std::to_string(k_max_socket_path_bytes));
                     }
                   } else if (key == "sysfs_root") {
                     config.sysfs_root = string_value(value, path);
                   } else if (key == "devices") {
                     parse_devices(value, path, config);
                   } else if (key == "expected_devices") {
                     config.expected_devices = static_cast<std::uint32_t>(uint_value(value, path, 0, 4096));
                   } else if (key == "backend_preference") {
                     parse_backend_preference(value, path, config);
                   } else if (key == "external_workers") {
                     parse_external_workers(value, path, config);
                   } else if (key == "probe_exclusive_gpus") {
                     config.probe_exclusive_gpus = bool_value(value, path);
                   } else if (key == "jitter_ratio") {
                     config.jitter_ratio = ranged(value, path, 0.0, false, 1.0, true);
                   } else if (key == "max_duty_cycle") {
                     config.max_duty_cycle = ranged(value, path, 0.0, true, 1.0, false);
                   } else if (key == "busy_utilization") {
                     config.busy_utilization = ranged(value, path, 0.0, true, 1.0, false);
                   } else if (key == "max_staleness_seconds") {
                     config.max_staleness_seconds = ranged(value, path, 1.0, false, 604800.0, false);
                   } else if (key == "shutdown_grace_seconds") {
                     config.shutdown_grace_seconds = ranged(value, path, 0.0, false, 3600.0, false);
                   } else if (key == "failure_dump_max_bytes") {
                     config.failure_dump_max_bytes = uint_value(value, path, 0, std::uint64_t{1} << 40);
                   } else if (key == "golden_cache_max_bytes") {
                     config.golden_cache_max_bytes = uint_value(value, path, 0, std::uint64_t{1} << 40);
                   } else if (key == "on_demand") {
                     parse_on_demand(value, path, config);
                   } else if (key == "log_level") {
                     const std::string level = string_value(value, path);
                     static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error"};
                     if (std::find(levels.begin(), levels.end(), level) == levels.end()) {
                       fail(value, path, "expected one of " + join(levels) + ", got '" + level + "'");
                     }
                     config.log_level = level;
                   } else if (key == "verdict") {
                     parse_verdict(value, path, config.verdict, order_mark, order_key);
                   } else if (key == "kubelet") {
                     parse_kubelet(value, path, config.kubelet);
                   } else if (key == "coverage") {
                     parse_coverage(value, path, config.coverage);
                   } else if (key == "telemetry") {
                     parse_telemetry(value, path, config.telemetry);
                   } else if (key == "probes") {
                     parse_probes(value, path, config);
                   }
                 });
    if (config.verdict.failures_to_fail < config.verdict.failures_to_degrade) {
      fail(order_mark, order_key,
           "verdict.failures_to_fail (" + std::to_string(config.verdict.failures_to_fail) +
               ") must be at least verdict.failures_to_degrade (" + std::to_string(config.verdict.failures_to_degrade) +
               ")");
    }
    return config;
  }

 private:
  void parse_kubelet(const YAML::Node& node, const std::string& path, KubeletSettings& kubelet) {
    for_each_key(node, path, {"pod_resources_socket", "interval_seconds"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                   if (key == "pod_resources_socket") {
                     kubelet.pod_resources_socket = string_value(value, p);
                     if (kubelet.pod_resources_socket.size() > k_max_socket_path_bytes) {
                       fail(value, p,
                            "a Unix socket path holds at most " + std::to_string(k_max_socket_path_bytes) +
                                " bytes, got " + std::to_string(kubelet.pod_resources_socket.size()));
                     }
                   } else {
                     kubelet.interval_seconds = ranged(value, p, 1.0, false, 86400.0, false);
                   }
                 });
  }

  void parse_listen(const YAML::Node& node, const std::string& path, Config& config) {
    for_each_key(
        node, path, {"address", "port", "web_config_file"},
        [&](const std::string& key, const YAML::Node& value, const std::string& p) {
          if (key == "web_config_file") {
            config.web_config_file = string_value(value, p);
          } else if (key == "address") {
            const std::string address = string_value(value, p);
            unsigned char buffer[sizeof(struct in6_addr)];
            if (inet_pton(AF_INET, address.c_str(), buffer) != 1 && inet_pton(AF_INET6, address.c_str(), buffer) != 1) {
              fail(value, p,
                   "expected an IPv4 or IPv6 address such as 0.0.0.0, 127.0.0.1 or ::, got '" + address + "'");
            }
            config.listen_address = address;
          } else {
            config.listen_port = static_cast<std::uint16_t>(uint_value(value, p, 1, 65535));
          }
        });
  }

  void parse_on_demand(const YAML::Node& node, const std::string& path, Config& config) {
    for_each_key(
        node, path, {"max_host_bytes"}, [&](const std::string&, const YAML::Node& value, const std::string& p) {
          config.on_demand_max_host_bytes = uint_value(value, p, std::uint64_t{1} << 20, std::uint64_t{1} << 40);
        });
  }

  void parse_devices(const YAML::Node& node, const std::string& path, Config& config) {
    if (!node.IsSequence()) fail(node, path, "expected a sequence of device selectors, got " + describe(node));
    if (node.size() == 0) fail(node, path, "must name at least one device selector (use [all] for every device)");
    // Linear in the number of selectors (a hash set, the sequence walked by iterator): 100,000
    // entries must not stall a reload on the loop.
    std::vector<std::string> devices;
    std::unordered_set<std::string> seen;
    std::size_t i = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++i) {
      const YAML::Node item = *it;
      const std::string key = path + "[" + std::to_string(i) + "]";
      std::string selector = string_value(item, key);
      if (!seen.insert(selector).second) fail(item, key, "duplicate selector '" + selector + "'");
      devices.push_back(std::move(selector));
    }
    config.devices = std::move(devices);
  }

  void parse_backend_preference(const YAML::Node& node, const std::string& path, Config& config) {
    static const std::vector<std::string> backends = {"cuda", "vulkan"};
    if (!node.IsSequence()) fail(node, path, "expected a sequence of backends (cuda, vulkan), got " + describe(node));
    if (node.size() == 0) fail(node, path, "must name at least one backend (cuda, vulkan)");
    std::vector<std::string> order;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string key = path + "[" + std::to_string(i) + "]";
      std::string backend = string_value(node[i], key);
      if (std::find(backends.begin(), backends.end(), backend) == backends.end()) {
        fail(node[i], key, "expected one of " + join(backends) + ", got '" + backend + "'");
      }
      if (std::find(order.begin(), order.end(), backend) != order.end()) {
        fail(node[i], key, "duplicate backend '" + backend + "'");
      }
      order.push_back(std::move(backend));
    }
    config.backend_preference = std::move(order);
  }

  // external_workers: [{name, argv, devices, environment, start_timeout_seconds}]
  // (docs/external-workers.md). Names become device ids (<name><index>), so they must not end in
  // a digit, clash with a built-in backend, or repeat.
  void parse_external_workers(const YAML::Node& node, const std::string& path, Config& config) {
    if (!node.IsSequence()) fail(node, path, "expected a sequence of workers, got " + describe(node));
    std::vector<ExternalWorkerConfig> workers;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      ExternalWorkerConfig worker;
      bool has_name = false, has_argv = false;
      for_each_key(
          node[i], at, {"name", "argv", "devices", "environment", "start_timeout_seconds"},
          [&](const std::string& key, const YAML::Node& value, const std::string& p) {
            if (key == "name") {
              worker.name = string_value(value, p);
              const std::string& n = worker.name;
              const bool well_formed =
                  n[0] >= 'a' && n[0] <= 'z' &&
                  n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos &&
                  !(n.back() >= '0' && n.back() <= '9');
              if (!well_formed) {
                fail(value, p,
                     "'" + n + "' must match [a-z][a-z0-9_-]* and not end in a digit (device ids are <name><index>)");
              }
              if (n == "vulkan" || n == "cuda" || n == k_external_backend) {
                fail(value, p, "'" + n + "' is a backend's name");
              }
              for (const ExternalWorkerConfig& other : workers) {
                if (other.name == n) fail(value, p, "duplicate worker name '" + n + "'");
              }
              has_name = true;
            } else if (key == "argv") {
              if (!value.IsSequence() || value.size() == 0) {
                fail(
                    value, p,
                    "expected a non-empty sequence of strings (the command and its arguments), got " + describe(value));
              }
              for (std::size_t j = 0; j < value.size(); ++j) {
                worker.argv.push_back(string_value(value[j], p + "[" + std::to_string(j) + "]"));
              }
              has_argv = true;
            } else if (key == "devices") {
              if (!value.IsSequence()) fail(value, p, "expected a sequence of device strings, got " + describe(value));
              for (std::size_t j = 0; j < value.size(); ++j) {
                worker.devices.push_back(string_value(value[j], p + "[" + std::to_string(j) + "]"));
              }
            } else if (key == "environment") {
              for_each_key(value, p, {}, [&](const std::string& name, const YAML::Node& v, const std::string& q) {
                if (name.empty() || name.find('=') != std::string::npos) fail(v, q, "not a variable name");
                if (!v.IsScalar()) fail(v, q, "expected a string, got " + describe(v));
                worker.environment[name] = v.Scalar();
              });
            } else {
              worker.start_timeout_seconds = ranged(value, p, 1.0, false, 3600.0, false);
            }
          });
      if (!has_name) fail(node[i], at, "missing key 'name'");
      if (!has_argv) fail(node[i], at, "missing key 'argv'");
      workers.push_back(std::move(worker));
    }
    config.external_workers = std::move(workers);
  }

  void parse_verdict(const YAML::Node& node, const std::string& path, VerdictPolicy& verdict, YAML::Mark& order_mark,
                     std::string& order_key) {
    bool saw_fail = false;
    for_each_key(node, path, {"failures_to_degrade", "failures_to_fail", "passes_to_recover", "slowdown_ratio"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                   if (key == "failures_to_degrade") {
                     verdict.failures_to_degrade = static_cast<std::uint32_t>(uint_value(value, p, 1, 1000));
                     if (!saw_fail) {
                       order_mark = value.Mark();
                       order_key = p;
                     }
                   } else if (key == "failures_to_fail") {
                     verdict.failures_to_fail = static_cast<std::uint32_t>(uint_value(value, p, 1, 1000));
                     order_mark = value.Mark();
                     order_key = p;
                     saw_fail = true;
                   } else if (key == "passes_to_recover") {
                     verdict.passes_to_recover = static_cast<std::uint32_t>(uint_value(value, p, 1, 1000));
                   } else {
                     verdict.slowdown_ratio = ranged(value, p, 1.0, true, 100.0, false);
                   }
                 });
  }

  void parse_coverage(const YAML::Node& node, const std::string& path, CoveragePolicy& coverage) {
    for_each_key(node, path, {"duty_share", "max_round_seconds"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                   if (key == "duty_share") {
                     coverage.duty_share = ranged(value, p, 0.0, false, 1.0, false);
                   } else {
                     coverage.max_round_seconds = ranged(value, p, 0.0, true, 3600.0, false);
                   }
                 });
  }

  void parse_telemetry(const YAML::Node& node, const std::string& path, TelemetrySchedule& telemetry) {
    for_each_key(node, path, {"interval_seconds", "timeout_seconds"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                   if (key == "interval_seconds") {
                     telemetry.interval_seconds = ranged(value, p, 1.0, false, 3600.0, false);
                   } else {
                     telemetry.timeout_seconds = ranged(value, p, 0.0, true, 3600.0, false);
                   }
                 });
    // A read still waiting for a late source when the next one is due would skip that snapshot.
    if (!(telemetry.timeout_seconds < telemetry.interval_seconds)) {
      fail(node, path,
           "timeout_seconds (" + format_number(telemetry.timeout_seconds) + ") must be less than interval_seconds (" +
               format_number(telemetry.interval_seconds) + ")");
    }
  }

  void parse_probes(const YAML::Node& node, const std::string& path, Config& config) {
    std::vector<std::string> ids;
    for (const ProbeDescriptor& d : probe_registry().all()) ids.push_back(d.id);
    for_each_key(node, path, ids, [&](const std::string& id, const YAML::Node& value, const std::string& p) {
      parse_probe(*probe_registry().find(id), value, p, config.probes[id]);
    });
  }

  template <class T>
  std::vector<T> parse_list(const YAML::Node& node, const std::string& path, const std::vector<T>& supported,
                            std::optional<T> (*parse)(const std::string&), const char* what) {
    if (!node.IsSequence()) fail(node, path, std::string("expected a sequence of ") + what + ", got " + describe(node));
    std::vector<std::string> names;
    for (T item : supported) names.push_back(to_string(item));
    std::vector<T> out;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string key = path + "[" + std::to_string(i) + "]";
      const std::string text = string_value(node[i], key);
      const std::optional<T> item = parse(text);
      if (!item || std::find(supported.begin(), supported.end(), *item) == supported.end()) {
        fail(node[i], key, "'" + text + "' is not supported by this probe (expected one of: " + join(names) + ")");
      }
      if (std::find(out.begin(), out.end(), *item) != out.end()) fail(node[i], key, "duplicate '" + text + "'");
      out.push_back(*item);
    }
    return out;
  }

  void parse_probe(const ProbeDescriptor& probe, const YAML::Node& node, const std::string& path,
                   ProbeSchedule& schedule) {
    // The specs this probe runs on a CPU device and on a GPU: what modes, dtypes and sizes can mean.
    DeviceInfo cpu, gpu;
    cpu.device_type = "cpu";
    gpu.device_type = "discrete";
    std::vector<ProbeSpec> specs = probe.default_specs(cpu);
    for (const ProbeSpec& spec : probe.default_specs(gpu)) specs.push_back(spec);
    std::vector<Mode> modes;
    std::vector<Dtype> dtypes;
    for (const ProbeSpec& spec : specs) {
      if (std::find(modes.begin(), modes.end(), spec.mode) == modes.end()) modes.push_back(spec.mode);
      if (std::find(dtypes.begin(), dtypes.end(), spec.dtype) == dtypes.end()) dtypes.push_back(spec.dtype);
    }

    YAML::Node drill_node, filter_node;
    std::string filter_key = path;
    for_each_key(node, path,
                 {"enabled", "interval_seconds", "timeout_seconds", "seed", "size", "modes", "dtypes", "drill"},
                 [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                   if (key == "enabled") {
                     schedule.enabled = bool_value(value, p);
                   } else if (key == "interval_seconds") {
                     schedule.interval_seconds = ranged(value, p, 1.0, false, 604800.0, false);
                   } else if (key == "timeout_seconds") {
                     schedule.timeout_seconds = ranged(value, p, 0.0, true, 86400.0, false);
                   } else if (key == "seed") {
                     schedule.seed = uint_value(value, p, 0, std::numeric_limits<std::uint64_t>::max());
                   } else if (key == "size") {
                     if (value.IsNull()) {
                       schedule.size.reset();
                     } else {
                       schedule.size = string_value(value, p);
                       for (ProbeSpec& spec : specs) {
                         Status sized = probe.apply_size(*schedule.size, spec);
                         if (!sized) fail(value, p, sized.error().message);
                       }
                     }
                   } else if (key == "modes") {
                     schedule.modes = parse_list<Mode>(value, p, modes, parse_mode, "modes");
                     filter_node = value;
                     filter_key = p;
                   } else if (key == "dtypes") {
                     // A probe without dtypes (memory: bit patterns) has nothing to choose.
                     if (probe.dtypes.empty() && value.IsSequence() && value.size() > 0) {
                       fail(value, p, "the " + probe.id + " probe has no dtypes to choose among (leave dtypes empty)");
                     }
                     schedule.dtypes = parse_list<Dtype>(value, p, dtypes, parse_dtype, "dtypes");
                     filter_node = value;
                     filter_key = p;
                   } else if (key == "drill") {
                     drill_node = value;
                     if (value.IsNull()) {
                       schedule.drill.reset();
                     } else {
                       schedule.drill = string_value(value, p);
                     }
                   }
                 });

    // Modes and dtypes each supported, but the combination must still select something.
    const bool any = std::any_of(specs.begin(), specs.end(), [&](const ProbeSpec& spec) {
      return spec_selected(probe, spec, schedule.modes, schedule.dtypes);
    });
    if (!any) fail(filter_node, filter_key, "no run of this probe has any of these modes with any of these dtypes");

    if (schedule.drill && !worker::is_process_drill(*schedule.drill)) {
      // Checked against the configured size as `substrated probe --inject` reads it; without a
      // size the row length waits for the device, so only the size-independent parts are checked.
      auto inject = schedule.size && !specs.empty() ? parse_drill(probe, *schedule.drill, specs.front())
                                                    : parse_injection(*schedule.drill, 0);
      if (!inject) fail(drill_node, path + ".drill", inject.error().message);
    }
  }

 public:
  // The exporter-toolkit web configuration (daemon/web_config.hpp); file names relative to
  // `directory`.
  WebConfig parse_web(const YAML::Node& root, const std::string& directory) {
    WebConfig web;
    web.source = source_;
    if (root.IsNull()) return web;
    if (!root.IsMap()) fail(root, "", "the top level must be a mapping of keys, got " + describe(root));
    auto file = [&](const YAML::Node& value, const std::string& p) {
      std::string name = string_value(value, p);
      return name.front() == '/' || directory.empty() ? name : directory + "/" + name;
    };
    auto version = [&](const YAML::Node& value, const std::string& p) {
      const std::string v = string_value(value, p);
      if (v != "TLS10" && v != "TLS11" && v != "TLS12" && v != "TLS13")
        fail(value, p, "expected TLS10, TLS11, TLS12 or TLS13, got '" + v + "'");
      return v;
    };
    YAML::Node tls_node;
    for_each_key(
        root, "", {"tls_server_config", "basic_auth_users", "http_server_config"},
        [&](const std::string& key, const YAML::Node& value, const std::string& path) {
          if (key == "http_server_config") {
            fail(value, path, "not supported by substrated (HTTP/1.1 only, no custom headers)");
          } else if (key == "basic_auth_users") {
            for_each_key(value, path, {}, [&](const std::string& user, const YAML::Node& hash, const std::string& p) {
              if (user.find(':') != std::string::npos) fail(hash, p, "a user name cannot contain ':'");
              const std::string h = string_value(hash, p);
              if (h.size() != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y'))
                fail(hash, p, "expected a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)");
              web.basic_auth_users[user] = h;
            });
          } else {
            tls_node = value;
            WebTlsConfig tls;
            for_each_key(
                value, path,
                {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version", "cert",
                 "key", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "client_allowed_sans"},
                [&](const std::string& k, const YAML::Node& v, const std::string& p) {
                  if (k == "cert_file") {
                    tls.cert_file = file(v, p);
                  } else if (k == "key_file") {
                    tls.key_file = file(v, p);
                  } else if (k == "client_ca_file") {
                    tls.client_ca_file = file(v, p);
                  } else if (k == "client_auth_type") {
                    tls.client_auth_type = string_value(v, p);
                    static const std::vector<std::string> types = {"NoClientCert", "RequestClientCert",
                                                                   "RequireAnyClientCert", "VerifyClientCertIfGiven",
                                                                   "RequireAndVerifyClientCert"};
                    if (std::find(types.begin(), types.end(), tls.client_auth_type) == types.end())
                      fail(v, p, "expected one of: " + join(types) + ", got '" + tls.client_auth_type + "'");
                  } else if (k == "min_version") {
                    tls.min_version = version(v, p);
                  } else if (k == "max_version") {
                    tls.max_version = version(v, p);
                  } else {
                    fail(v, p, "not supported by substrated (use cert_file, key_file, client_ca_file)");
                  }
                });
            web.tls = tls;
          }
        });
    if (web.tls) {
      const WebTlsConfig& tls = *web.tls;
      const std::string p = "tls_server_config";
      if (tls.cert_file.empty() || tls.key_file.empty()) fail(tls_node, p, "needs both cert_file and key_file");
      const bool verifies =
          tls.client_auth_type == "VerifyClientCertIfGiven" || tls.client_auth_type == "RequireAndVerifyClientCert";
      if (verifies && tls.client_ca_file.empty())
        fail(tls_node, p + ".client_auth_type", tls.client_auth_type + " needs client_ca_file");
      if (!tls.client_ca_file.empty() && tls.client_auth_type == "NoClientCert")
        fail(tls_node, p + ".client_ca_file", "a client CA without a client_auth_type that checks client certificates");
      if (!tls.max_version.empty() && tls.max_version < tls.min_version)
        fail(tls_node, p + ".max_version", "is older than min_version " + tls.min_version);
    }
    return web;
  }

 private:
  std::string source_;
  YAML::Mark null_key_mark_ = YAML::Mark::null_mark();
};

}  // namespace

std::string control_socket_path(const Config& config) { return config.runtime_directory + "/control.sock"; }

Config default_config() {
  Config config;
  config.probes.clear();
  for (const ProbeDescriptor& d : probe_registry().all()) {
    ProbeSchedule schedule;
    schedule.enabled = d.enabled_by_default;
    schedule.interval_seconds = d.default_interval_seconds;
    schedule.timeout_seconds = d.default_timeout_seconds;
    config.probes[d.id] = schedule;
  }
  return config;
}

namespace {

// One YAML document through `parse` (a Parser member), every problem as invalid_argument.
template <typename T, typename Parse>
Expected<T> parse_document(const std::string& text, const std::string& source, Parse parse) {
  Parser parser(source);
  try {
    std::vector<YAML::Node> documents;
    try {
      documents = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      parser.fail(e.mark, "", "YAML syntax error: " + e.msg);
    }
    if (documents.size() > 1) parser.fail(documents[1], "", "only one YAML document is allowed");
    return parse(parser, documents.empty() ? YAML::Node() : documents.front());
  } catch (const ConfigProblem& problem) {
    return Error{ErrorKind::invalid_argument, problem.message};
  } catch (const YAML::Exception& e) {
    return Error{ErrorKind::invalid_argument, source + ":" + std::to_string(e.mark.line + 1) + ":" +
                                                  std::to_string(e.mark.column + 1) + ": " + e.msg};
  }
}

// The file's text (at most k_max_config_bytes); `what` names the file's role in errors.
Expected<std::string> read_config_text(const std::string& path, const std::string& what) {
  auto text = read_file(path, k_max_config_bytes);
  if (!text) {
    const ReadFileError& failure = text.error();
    if (failure.step == ReadFileError::Step::too_large) {
      return Error{ErrorKind::invalid_argument,
                   path + ":1:1: the file is larger than " + std::to_string(k_max_config_bytes) + " bytes"};
    }
    // Not a regular file (a FIFO would block `config check` and the loop on SIGHUP): refused
    // at once, saying what the path is.
    if (failure.step == ReadFileError::Step::not_regular)
      return Error{ErrorKind::io_error, "cannot read " + what + " " + failure.message};
    return Error{ErrorKind::io_error, "cannot read " + what + " " + path + ": " + std::strerror(failure.error_number)};
  }
  return std::move(text.value());
}

}  // namespace

Expected<Config> parse_config(const std::string& text, const std::string& source) {
  return parse_document<Config>(text, source,
                                [](Parser& parser, const YAML::Node& root) { return parser.parse(root); });
}

Expected<Config> load_config(const std::string& path) {
  TRY_ASSIGN(auto text, read_config_text(path, "config"));
  return parse_config(text, path);
}

Expected<WebConfig> parse_web_config(const std::string& text, const std::string& source, const std::string& directory) {
  return parse_document<WebConfig>(
      text, source, [&](Parser& parser, const YAML::Node& root) { return parser.parse_web(root, directory); });
}

Expected<WebConfig> load_web_config(const std::string& path) {
  TRY_ASSIGN(auto text, read_config_text(path, "web config"));
  const auto slash = path.rfind('/');
  return parse_web_config(text, path,
                          slash == std::string::npos ? "." : path.substr(0, std::max<std::size_t>(slash, 1)));
}

}  // namespace substrate
