#pragma once
// The daemon's configuration (YAML, default config/substrated.yaml; every key documented in
// docs/configuration.md). Parsing validates everything: unknown keys, wrong types and values out
// of range are errors naming file, line, column and key.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "daemon/external_worker.hpp"
#include "kernels/spec.hpp"

namespace substrate {

struct ProbeSchedule {
  bool enabled = true;
  double interval_seconds = 300.0;
  double timeout_seconds = 120.0;
  std::uint64_t seed = 1;
  std::optional<std::string> size;   // as `substrated probe --size`
  std::vector<Mode> modes;           // empty: the probe's defaults
  std::vector<Dtype> dtypes;         // empty: the probe's defaults
  std::optional<std::string> drill;  // as `--inject`: a standing fault-injection drill
  bool operator==(const ProbeSchedule&) const = default;
};

struct VerdictPolicy {
  // Consecutive failing runs of a non-definite kind (fingerprint change, cross-device minority,
  // slowdown, error) before the device leaves healthy; a golden mismatch fails at once.
  std::uint32_t failures_to_degrade = 2;
  std::uint32_t failures_to_fail = 3;
  std::uint32_t passes_to_recover = 3;  // consecutive clean runs before returning to healthy
  double slowdown_ratio = 1.5;          // device time / baseline that counts as a slowdown
  bool operator==(const VerdictPolicy&) const = default;
};

// How telemetry is sampled: one snapshot of every source every interval_seconds, each source's
// read given timeout_seconds (daemon/telemetry_reader.hpp); /metrics serves the last snapshot.
struct TelemetrySchedule {
  double interval_seconds = 15.0;
  double timeout_seconds = 5.0;  // less than interval_seconds
  bool operator==(const TelemetrySchedule&) const = default;
};

// Coverage: how much of the duty cycle scheduled rounds spend repeating their specs
// (round_repeat_seconds in daemon/scheduler.hpp; docs/configuration.md).
struct CoveragePolicy {
  double duty_share = 0.5;         // share of max_duty_cycle for repeated passes; 0: one pass per round
  double max_round_seconds = 2.0;  // the longest one round repeats, seconds
  bool operator==(const CoveragePolicy&) const = default;
};

// Pod attribution (daemon/kubelet/pod_resources.hpp): off while the socket is empty.
struct KubeletSettings {
  std::string pod_resources_socket;  // e.g. /var/lib/kubelet/pod-resources/kubelet.sock
  double interval_seconds = 30.0;    // how often the kubelet's List is asked
  bool operator==(const KubeletSettings&) const = default;
};

struct Config {
  std::string source = "<defaults>";  // file the config came from
  std::string listen_address = "0.0.0.0";
  std::uint16_t listen_port = 19400;
  // exporter-toolkit web configuration (TLS, basic auth; daemon/web_config.hpp); empty: plain
  // HTTP without auth. `serve --web.config.file` overrides it.
  std::string web_config_file;
  std::string state_directory = "/var/lib/substrated";
  std::string runtime_directory = "/run/substrated";
  std::string sysfs_root = "/sys";
  std::vector<std::string> devices = {"all"};  // selectors as `--device`
  // Compute devices this host should have (0: no expectation); exported so an alert fires when
  // discovery finds fewer (a GPU fell off the bus, a driver is missing).
  std::uint32_t expected_devices = 0;
  // Which backend probes a GPU that several backends see (discover_devices); read only at start.
  std::vector<std::string> backend_preference = {"cuda", "vulkan"};
  // Worker programs the daemon did not compile in (docs/external-workers.md), started for
  // discovery and for each round of their devices.
  std::vector<ExternalWorkerConfig> external_workers;
  // Whether a GPU in EXCLUSIVE_PROCESS compute mode is probed while no other process is on it;
  // off: even a brief probe context can make a workload's start fail (docs/cuda.md).
  bool probe_exclusive_gpus = false;
  double jitter_ratio = 0.1;              // each interval is stretched or shrunk by up to this share
  double max_duty_cycle = 0.01;           // device time / wall time budget per device
  double busy_utilization = 0.5;          // defer probes while telemetry utilisation is above this
  double max_staleness_seconds = 3600.0;  // ...but never longer than this
  double shutdown_grace_seconds = 10.0;   // wait this long for a running probe on SIGTERM
  std::string log_level = "info";
  // Disk bound for the dumps of the last failing run per device and probe, kept in
  // <state_directory>/dumps for `substrated compare`; 0 keeps none.
  std::uint64_t failure_dump_max_bytes = 256ull << 20;
  // Memory bound for the CPU goldens kept between runs (shared by every device); 0 keeps none,
  // so every run computes its golden again.
  std::uint64_t golden_cache_max_bytes = 256ull << 20;
  // on_demand.max_host_bytes: host memory one on-demand run (`substrated probe` through the
  // control socket) may need in its worker, checked before the worker starts
  // (daemon/control_commands.hpp). The default leaves the unit's MemoryMax=256M room for the
  // daemon beside one such worker.
  std::uint64_t on_demand_max_host_bytes = 192ull << 20;
  VerdictPolicy verdict;
  CoveragePolicy coverage;
  TelemetrySchedule telemetry;
  KubeletSettings kubelet;
  std::map<std::string, ProbeSchedule> probes;     // by registry id; every registered probe present
  bool operator==(const Config&) const = default;  // compares `source` too
};

// Where the daemon listens for control requests: <runtime_directory>/control.sock. The parser
// refuses a runtime_directory that makes this longer than k_max_socket_path_bytes (a Unix socket
// address holds 107 bytes and a NUL).
std::string control_socket_path(const Config& config);
inline constexpr std::size_t k_max_socket_path_bytes = 107;

// The defaults, with every registered probe present (what an empty file gives, source aside).
Config default_config();

// Parses YAML text; `source` names the file in errors. invalid_argument with
// "FILE:LINE:COLUMN: key 'probes.gemm.interval_seconds': ..." on any problem.
Expected<Config> parse_config(const std::string& text, const std::string& source);
// Reads and parses a file; io_error when it cannot be read.
Expected<Config> load_config(const std::string& path);

}  // namespace substrate
