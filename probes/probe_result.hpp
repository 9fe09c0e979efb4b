#pragma once
// One structure and one reporting path for every probe run: what ran (device, spec, seed), what
// the oracles said, and the evidence. Serialises to JSON (schema: docs/probe-result.md).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/spec.hpp"
#include "probes/check.hpp"
#include "probes/compute_device.hpp"

namespace substrate {

enum class RunStatus { pass, fail, error };
const char* to_string(RunStatus status);

struct MemoryDetails {
  std::uint64_t bytes_tested = 0;
  std::uint64_t bad_words = 0;
  double bandwidth_bytes_per_second = 0.0;
  std::vector<BadWord> first_bad;  // with re-read values: stored flip or transient
  std::array<std::uint64_t, 32> flipped_bits{};
  std::uint64_t retention_bytes = 0;
  std::uint64_t retention_bad_words = 0;
  double retention_age_seconds = 0.0;
};

struct ProbeResult {
  DeviceInfo device;
  ProbeSpec spec;
  std::string kernel;  // kernel id, e.g. "vulkan.gemm.tiled16"
  RunStatus status = RunStatus::error;
  std::string error;   // why it could not run (status == error)
  ErrorKind error_kind = ErrorKind::device_error;
  CheckOutcome check;
  std::string fingerprint;
  double device_seconds = 0.0;    // checked kernels, device timer
  double generate_seconds = 0.0;  // on-device input generation
  double golden_seconds = 0.0;
  double wall_seconds = 0.0;
  double finished_at = 0.0;       // unix seconds
  std::optional<MemoryDetails> memory;
  bool drill() const { return spec.inject.enabled; }
};

// Classifies a memory bad word: "stored" when the re-read shows the same wrong value,
// "transient" when it shows the expected one, "unstable" otherwise.
const char* persistence(const BadWord& bad);

void to_json(nlohmann::json& out, const ProbeSpec& spec);
// Throws nlohmann::json exceptions on a malformed document.
void from_json(const nlohmann::json& in, ProbeSpec& spec);
void to_json(nlohmann::json& out, const DeviceInfo& info);
void to_json(nlohmann::json& out, const ProbeResult& result);
// Parses a stored result's spec for replay; an invalid_argument error names the problem.
Expected<ProbeSpec> spec_from_result_json(const std::string& text);

}  // namespace substrate
