#pragma once
// The telemetry snapshot model: what one read of every source returned, per device. Plain data:
// the readers fill it, metrics.cpp turns it into Prometheus families, verdict.cpp compares two
// snapshots. Every value is in base units (celsius, watts, hertz, seconds, ratios 0-1); a reading a
// device does not support is simply absent.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace substrate::telemetry {

// Source names; also the values of the `source` label.
inline constexpr const char* kSourceNvml = "nvml";
inline constexpr const char* kSourceAmdgpu = "amdgpu";
inline constexpr const char* kSourceHwmon = "hwmon";
inline constexpr const char* kSourceAccel = "accel";

struct TemperatureReading {
  std::string sensor;  // gpu, memory, edge, junction, ...
  double celsius = 0.0;
};

struct ThresholdReading {
  std::string sensor;
  std::string threshold;  // slowdown, shutdown, max, crit, emergency
  double celsius = 0.0;
};

struct EccCount {
  std::string kind;      // corrected, uncorrected
  std::string scope;     // volatile, aggregate
  std::string location;  // total, device_memory, l1, l2, register_file, sram, or an amdgpu RAS block
  std::uint64_t count = 0;
};

struct XidCount {
  std::uint32_t xid = 0;
  std::uint64_t count = 0;              // events seen since the watcher started
  double last_timestamp_seconds = 0.0;  // Unix time of the last one
};

struct NvlinkErrorCount {
  std::uint32_t link = 0;
  std::string kind;  // replay, recovery, crc_flit, crc_data, ecc_data
  std::uint64_t count = 0;
};

struct Readings {
  std::vector<TemperatureReading> temperatures;
  std::vector<ThresholdReading> temperature_thresholds;
  std::vector<EccCount> ecc;
  std::map<std::string, std::uint64_t> retired_pages;  // cause (single_bit, double_bit) -> pages
  std::optional<bool> retired_pages_pending;
  std::map<std::string, std::uint64_t> remapped_rows;  // kind (correctable, uncorrectable) -> rows
  std::optional<bool> remapped_rows_pending;
  std::optional<bool> remapped_rows_failure;
  std::optional<std::uint64_t> vram_bad_pages;
  std::vector<XidCount> xids;
  std::map<std::string, bool> clock_event_reasons;  // reason -> active
  std::map<std::string, double> throttle_seconds;   // reason -> cumulative violation time
  std::optional<double> power_watts;
  std::optional<double> power_limit_watts;
  std::map<std::string, double> clock_hertz;        // sm, memory
  std::map<std::string, double> utilization_ratio;  // gpu, memory
  std::optional<std::uint64_t> pcie_replays;
  std::vector<NvlinkErrorCount> nvlink_errors;
  bool gpu_lost = false;  // NVML answered NVML_ERROR_GPU_IS_LOST during this read
  // NVML's GPU recovery action: none, gpu_reset, node_reboot, drain_p2p, drain_and_reset,
  // recover_imex_domain, bus_reset, system_reboot or other; absent where the driver lacks the field.
  std::optional<std::string> recovery_action;
  // Accel (NPU) values in base units, keyed by what the driver calls them (busy_seconds,
  // memory_used_bytes, current_frequency_hertz, max_frequency_hertz). docs/metrics.md has no
  // names for them yet, so they are kept in the snapshot and not exported.
  std::map<std::string, double> npu;
};

struct TelemetryDevice {
  std::string source;      // kSource*
  std::string local_id;    // host-local name used when no compute device matches: nvml0,
                           // drm-card0, hwmon3, accel0
  std::string pci_bus_id;  // "0000:65:00.0", empty when the device is not on PCI
  std::string uuid;        // lower-case 8-4-4-4-12, empty when the source does not know it
  std::string device;      // the `device` label, set by join_devices(); empty before
  Readings readings;
};

// A read that failed for a reason other than "not supported". `cause` is a label value from a
// bounded set (unreadable, malformed, or an NVML error name); `detail` goes to the log only.
struct ReadError {
  std::string source;
  std::string cause;
  std::string detail;
};

// What one source returned in one read.
struct SourceResult {
  std::vector<TelemetryDevice> devices;
  std::vector<ReadError> errors;
  std::vector<std::string> notes;  // e.g. "NVML absent: libnvidia-ml.so.1 not found"
  // NVML only: whether nvmlInit has succeeded (false while it fails and is retried).
  std::optional<bool> nvml_up;
};

struct ErrorTotal {
  std::string source;
  std::string cause;
  std::uint64_t count = 0;  // since start
};

struct Snapshot {
  std::vector<TelemetryDevice> devices;
  std::vector<ErrorTotal> error_totals;
  std::vector<std::string> notes;
  // Whether nvmlInit has succeeded; absent where libnvidia-ml is not installed or NVML is disabled.
  std::optional<bool> nvml_up;
};

}  // namespace substrate::telemetry
