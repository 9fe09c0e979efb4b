// Memory probe: pattern passes over a share of the device's free memory (walking ones/zeros,
// own address, moving inversions, random), a retention block re-read across runs, bad words
// re-read to tell stored flips from transient reads, and the achieved bandwidth.
#include <algorithm>
#include <array>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "probes/memory/memory_probe.hpp"

namespace substrate {
namespace {

constexpr std::uint64_t k_retention_bytes = 1ull << 20;
// Fixed, so the retention block survives probe runs with different seeds.
constexpr std::uint64_t k_retention_seed = 0x5245544eull;

struct MemoryProbe {
  static constexpr const char* id = "memory";
  static constexpr const char* description =
      "device memory patterns over a share of free memory, retention block, stored vs transient flips";
  static constexpr std::array kernels{"memory"};
  static constexpr bool enabled_by_default = true;
  static constexpr Maturity maturity = Maturity::stable;
  static constexpr double default_interval_seconds = 900.0;  // pattern passes are heavier
  static constexpr double default_timeout_seconds = 120.0;
  // Bit patterns, not numbers: no modes or dtypes to choose among.
  static constexpr std::array<Mode, 0> modes{};
  static constexpr std::array<Dtype, 0> dtypes{};
  static constexpr std::array backends{"vulkan", "cuda"};
  static constexpr bool injects_by_layer = false;

  static std::vector<ProbeSpec> default_specs(const DeviceInfo& device);
  static Status apply_size(const std::string& text, ProbeSpec& spec);
  // The byte cap; an explicit size also tests up to all of the free memory (free_share 1).
  static std::string shape_text(const ProbeSpec& spec) { return std::to_string(spec.memory.max_bytes); }
  static std::string spec_key(const ProbeSpec& spec) { return std::string(id) + "/" + shape_text(spec); }
  // A drill names a 32-bit word offset: one word per row.
  static std::uint64_t row_length(const ProbeSpec&, std::uint32_t) { return 1; }
  static void shape_to_json(const ProbeSpec& spec, nlohmann::json& out) {
    out = {{"free_share", spec.memory.free_share},
           {"max_bytes", spec.memory.max_bytes},
           {"min_bytes", spec.memory.min_bytes}};
  }
  static void shape_from_json(const nlohmann::json& in, ProbeSpec& spec) {
    spec.memory = {in.at("free_share").get<double>(), in.at("max_bytes").get<std::uint64_t>(),
                   in.value("min_bytes", std::uint64_t{4})};
  }
  // Patterns are regenerated from the offset and seed: nothing to dump.
  static std::vector<DumpInput> dump_inputs(const ProbeSpec&) { return {}; }
  // Device: the region (max_bytes, at most free_share of the device's memory, known only as its
  // total here) and the retention block. Host: the retention block's re-read and the error
  // readback, each at most k_retention_bytes.
  static MemoryNeeds memory_needs(const ProbeSpec& spec, const DeviceInfo& device) {
    double region = static_cast<double>(spec.memory.max_bytes);
    if (device.memory_bytes > 0) {
      region = std::min(region, static_cast<double>(device.memory_bytes) * spec.memory.free_share);
    }
    return {saturated_bytes(region + k_retention_bytes), 2 * k_retention_bytes};
  }
  static Status run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, ProbeResult& result);
};

std::vector<ProbeSpec> MemoryProbe::default_specs(const DeviceInfo& device) {
  ProbeSpec spec;
  spec.probe = id;
  spec.mode = Mode::random;
  // A GPU: 10% of what is free, at least 64 MiB (less free means a workload holds the GPU: the
  // run is skipped, busy) and at most 4 GiB. A CPU device: 2%, up to 8 MiB, no floor.
  spec.memory = device.is_cpu() ? MemoryShape{0.02, 8ull << 20, 4} : MemoryShape{0.10, 4ull << 30, 64ull << 20};
  return {spec};
}

Expected<std::uint64_t> parse_bytes(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  const std::string suffix = end ? end : "";
  std::uint64_t scale = 1;
  if (suffix == "K" || suffix == "KiB")
    scale = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB")
    scale = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB")
    scale = 1ull << 30;
  else if (!suffix.empty())
    scale = 0;
  if (text.empty() || scale == 0 || !(value * static_cast<double>(scale) >= 4) ||
      value * static_cast<double>(scale) > 1e15) {
    return Error{ErrorKind::invalid_argument, "memory size '" + text + "': expected bytes like 4096, 64M or 2G"};
  }
  return static_cast<std::uint64_t>(value * static_cast<double>(scale)) & ~std::uint64_t{3};
}

// "4096", "64M": that many bytes, or skipped when less is free. "10%", "10%,64M" or
// "10%,64M,4G": a share of the free memory, with a floor (default 4 bytes) and a cap (default
// the spec's).
Status MemoryProbe::apply_size(const std::string& text, ProbeSpec& spec) {
  if (const std::size_t percent = text.find('%'); percent != std::string::npos) {
    char* end = nullptr;
    const double share = std::strtod(text.c_str(), &end) / 100.0;
    const std::string rest = text.substr(percent + 1);
    if (end != text.c_str() + percent || !(share > 0.0 && share <= 1.0) || (!rest.empty() && rest[0] != ',')) {
      return Error{ErrorKind::invalid_argument,
                   "memory size '" + text + "': expected a share like 10%, 10%,64M or 10%,64M,4G (share in (0, 100]%)"};
    }
    MemoryShape shape{share, spec.memory.max_bytes, 4};
    if (!rest.empty()) {
      const std::size_t comma = rest.find(',', 1);
      TRY_ASSIGN(shape.min_bytes,
                 parse_bytes(rest.substr(1, comma == std::string::npos ? std::string::npos : comma - 1)));
      if (comma != std::string::npos) {
        TRY_ASSIGN(shape.max_bytes, parse_bytes(rest.substr(comma + 1)));
      }
    }
    if (shape.min_bytes > shape.max_bytes) {
      return Error{ErrorKind::invalid_argument, "memory size '" + text + "': the floor is above the cap"};
    }
    spec.memory = shape;
    return ok_status();
  }
  TRY_ASSIGN(auto bytes, parse_bytes(text));
  spec.memory = {1.0, bytes, bytes};  // an explicit size is the size
  return ok_status();
}

Status MemoryProbe::run(ComputeDevice& device, const ProbeSpec& spec, GoldenCache&, ProbeResult& result) {
  if (!(spec.memory.free_share > 0.0 && spec.memory.free_share <= 1.0) || spec.memory.max_bytes < 4) {
    return Error{ErrorKind::invalid_argument, "memory: free_share must be in (0, 1] and max_bytes at least 4"};
  }
  const std::uint64_t free = device.free_memory_bytes();
  if (free < 4) {
    // The driver reported no free memory, or could not say (cuMemGetInfo failed): a token region
    // would pass while testing nothing, so the run is skipped.
    return Error{ErrorKind::out_of_memory,
                 "memory: the device reports no free memory (or its free memory could not be read)"};
  }
  const auto share = static_cast<std::uint64_t>(static_cast<double>(free) * spec.memory.free_share);
  const std::uint64_t bytes = std::max<std::uint64_t>(4, std::min(share, spec.memory.max_bytes) & ~std::uint64_t{3});
  if (spec.inject.enabled && is_pattern(spec.inject)) {
    return Error{ErrorKind::invalid_argument,
                 "memory: --inject count/stride patterns apply to gemm and attention outputs; the memory probe "
                 "injects one word"};
  }
  if (bytes < spec.memory.min_bytes) {
    // A workload holds the memory: testing what is left would take it from the workload.
    return Error{ErrorKind::busy, "memory: " + std::to_string(free) + " bytes free, the share to test (" +
                                      std::to_string(bytes) + " bytes) is below the floor of " +
                                      std::to_string(spec.memory.min_bytes) + " bytes"};
  }
  if (spec.inject.enabled && spec.inject.element >= bytes / 4) {
    return Error{ErrorKind::invalid_argument, "memory: injected word " + std::to_string(spec.inject.element) +
                                                  " is outside the " + std::to_string(bytes) + "-byte region"};
  }
  MemoryLaunch launch;
  launch.bytes = bytes;
  launch.seed = spec.seed;
  launch.patterns = {MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address,
                     MemoryPattern::moving_inversions, MemoryPattern::random};
  launch.inject = spec.inject;
  TRY_ASSIGN(auto run, device.run_memory(launch));
  TRY_ASSIGN(auto retention, device.check_retention(std::min(k_retention_bytes, bytes), k_retention_seed));

  MemoryDetails details;
  details.bytes_tested = run.bytes_tested;
  details.bad_words = run.bad_words;
  details.bandwidth_bytes_per_second =
      run.device_seconds > 0 ? static_cast<double>(run.bytes_moved) / run.device_seconds : 0.0;
  details.first_bad = run.first_bad;
  for (int bit = 0; bit < 32; ++bit) details.flipped_bits[bit] = run.bit_histogram[bit];
  details.retention_bytes = retention.bytes;
  details.retention_bad_words = retention.bad_words;
  details.retention_age_seconds = retention.age_seconds;
  for (const BadWord& bad : retention.first_bad) details.first_bad.push_back(bad);

  result.kernel = run.kernel;
  result.check.checked = run.words_checked;
  result.check.mismatched = run.bad_words + retention.bad_words;
  result.check.pass = result.check.mismatched == 0;
  result.check.guaranteed_bit = 0;  // patterns are exact: any flipped bit of any word is seen
  result.check.guaranteed_elements = run.words_checked;
  result.check.flipped_bits = details.flipped_bits;
  result.device_seconds = run.device_seconds;
  result.memory = std::move(details);
  result.status = result.check.pass ? RunStatus::pass : RunStatus::fail;
  return ok_status();
}

}  // namespace

ProbeDescriptor memory_probe() { return describe<MemoryProbe>(); }

}  // namespace substrate
