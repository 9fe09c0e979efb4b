#pragma once
// One structure and one reporting path for every probe run: what ran (device, spec, seed), what
// the oracles said, and the evidence. Serialises to JSON (schema: docs/probe-result.md).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/golden/golden.hpp"
#include "kernels/spec.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/core/check.hpp"

namespace substrate {

// skipped: the probe did not run on this device (see SkipKind); neither a pass nor a failure.
// hung: the worker running the spec outlived its deadline and was killed; crashed: the worker
// died by a signal (daemon/supervisor.hpp). Both come from the daemon, never from a probe.
enum class RunStatus { pass, fail, error, skipped, hung, crashed };
const char* to_string(RunStatus status);
// Inverse of to_string; nullopt for an unknown name.
std::optional<RunStatus> parse_run_status(const std::string& name);

// Why a run was skipped, a bounded set (the `reason` label of substrate_probe_skipped_total).
// not_implemented: the device's backend has no kernels for the probe. out_of_memory: the device
// had too little free memory for the run (ErrorKind::out_of_memory, e.g. CUDA_ERROR_OUT_OF_MEMORY
// at context creation, allocation or launch; or no free memory could be read). device_busy: the
// device refused this process (ErrorKind::busy: CUDA_ERROR_DEVICE_UNAVAILABLE in an exclusive
// compute mode, NOT_PERMITTED, MPS errors). A busy GPU is healthy: skips never fold into a verdict.
enum class SkipKind { not_implemented, out_of_memory, device_busy };
inline constexpr SkipKind k_all_skip_kinds[] = {SkipKind::not_implemented, SkipKind::out_of_memory,
                                                SkipKind::device_busy};
const char* to_string(SkipKind kind);
// Inverse of to_string; nullopt for an unknown name.
std::optional<SkipKind> parse_skip_kind(const std::string& name);

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

// The raw tensors of one run, kept only when asked for (run_probe(..., capture_tensors), used by
// `probe --dump`); never serialised.
struct RunTensors {
  struct Layer {  // canary checkpoints, in order
    std::string name;
    std::vector<std::uint64_t> shape;
    std::vector<std::uint32_t> output_bits;
    std::vector<double> golden, bound;
  };
  std::vector<std::uint64_t> output_shape;          // e.g. {m, n}; {heads, seq_len, head_dim}
  std::vector<std::uint32_t> output_bits;           // f32 words as the device wrote them
  std::shared_ptr<const golden::Reference> golden;  // value and bound, same shape
  std::vector<Layer> layers;
};

// The canary's per-layer agreement (probes/canary/canary_probe.cpp).
struct CanaryLayerReport {
  std::string name;
  std::uint32_t rows = 0, cols = 0;
  std::uint64_t mismatched = 0;
  double max_abs_error = 0.0;
  double budget_used = 0.0;  // max |error| / bound
  double cosine = 1.0;       // device vs golden over the whole layer
};

struct CanaryDetails {
  std::vector<CanaryLayerReport> layers;
  std::string first_diverging_layer;  // empty when every layer agrees
  std::uint32_t tokens = 0;
  std::uint32_t argmax_agreeing_tokens = 0;  // next-token argmax of the logits, device vs golden
  std::uint32_t top5_agreeing_tokens = 0;    // device argmax within the golden top 5
  std::vector<std::uint32_t> input_tokens;
};

struct ProbeResult {
  DeviceInfo device;
  ProbeSpec spec;
  std::string kernel;  // kernel id, e.g. "vulkan.gemm.tiled16"
  RunStatus status = RunStatus::error;
  // Why it could not run (status error, hung, crashed), or the hardware evidence of a fail that
  // no check produced (status fail with error_kind hardware_fault, e.g. CUDA_ERROR_ECC_UNCORRECTABLE).
  std::string error;
  ErrorKind error_kind = ErrorKind::device_error;
  std::string skip_reason;  // why it did not run (status == skipped): "not implemented on the cuda backend"
  SkipKind skip_kind = SkipKind::not_implemented;
  CheckOutcome check;
  std::string fingerprint;
  double device_seconds = 0.0;    // checked kernels, device timer
  double generate_seconds = 0.0;  // on-device input generation
  double golden_seconds = 0.0;
  double wall_seconds = 0.0;
  double finished_at = 0.0;  // unix seconds
  std::optional<MemoryDetails> memory;
  std::optional<CanaryDetails> canary;
  std::shared_ptr<RunTensors> tensors;  // set before the run when capturing; probes fill it
  bool drill() const { return spec.inject.enabled; }
};

// Classifies a memory bad word: "stored" when the re-read shows the same wrong value,
// "transient" when it shows the expected one, "unstable" otherwise.
const char* persistence(const BadWord& bad);

// A spec as JSON: probe, dtype, mode, seed, key, the shape under the probe id, the injection.
void to_json(nlohmann::json& out, const ProbeSpec& spec);
// Throws nlohmann::json exceptions on a malformed document; an unknown probe keeps no shape.
void from_json(const nlohmann::json& in, ProbeSpec& spec);
void to_json(nlohmann::json& out, const DeviceInfo& info);
// A result as JSON (docs/probe-result.md).
void to_json(nlohmann::json& out, const ProbeResult& result);
// Inverses of the to_json above (the worker protocol carries results as this JSON): everything
// to_json writes comes back, except `tensors`. Throw nlohmann::json exceptions on a malformed
// document.
void from_json(const nlohmann::json& in, DeviceInfo& info);
void from_json(const nlohmann::json& in, ProbeResult& result);

}  // namespace substrate
