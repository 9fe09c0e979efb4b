#pragma once
// Probe descriptors (OpenDCDiag-style): each probe is one file declaring id, description,
// kernels, default enablement, time budget and maturity, plus how to build its default specs
// and how to run one spec. The CLI and the scheduler only see descriptors.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/golden/golden.hpp"
#include "probes/compute_device.hpp"
#include "probes/probe_result.hpp"

namespace substrate {

enum class Maturity { stable, beta };
const char* to_string(Maturity maturity);

// Goldens depend only on (spec key, seed): computed once and shared by every run and device.
class GoldenCache {
 public:
  explicit GoldenCache(std::size_t max_entries = 32) : max_entries_(max_entries) {}
  std::shared_ptr<const golden::Reference> get(const ProbeSpec& spec,
                                               const std::function<golden::Reference()>& compute);
  std::size_t hits() const;
  std::size_t misses() const;

 private:
  mutable std::mutex mutex_;
  std::size_t max_entries_;
  std::unordered_map<std::string, std::shared_ptr<const golden::Reference>> entries_;
  std::vector<std::string> order_;
  std::size_t hits_ = 0, misses_ = 0;
};

struct ProbeDescriptor {
  std::string id;
  std::string description;
  std::vector<std::string> kernels;
  bool enabled_by_default = true;
  Maturity maturity = Maturity::stable;
  double time_budget_seconds = 10.0;
  // Default specs for a device: sizes by device class (the seed is left at 1).
  std::function<std::vector<ProbeSpec>(const DeviceInfo&)> default_specs;
  // Applies a size text ("256", "128x64x32", "64M") to a spec; invalid_argument names the problem.
  std::function<Status(const std::string&, ProbeSpec&)> apply_size;
  // Runs one spec: fills kernel, check, fingerprint and timings of `result`; sets status pass or
  // fail, or returns an Error when the device could not run it.
  std::function<Status(ComputeDevice&, const ProbeSpec&, GoldenCache&, ProbeResult&)> run;
};

class ProbeRegistry {
 public:
  // invalid_argument when the id is already registered.
  Status add(ProbeDescriptor descriptor);
  const ProbeDescriptor* find(const std::string& id) const;
  const std::vector<ProbeDescriptor>& all() const { return probes_; }

 private:
  std::vector<ProbeDescriptor> probes_;
};

// The registration table: every built-in probe.
const ProbeRegistry& probe_registry();

// The descriptors, one per probe file.
ProbeDescriptor gemm_probe();
ProbeDescriptor attention_probe();
ProbeDescriptor memory_probe();
ProbeDescriptor canary_probe();

// Runs one spec through its descriptor with timing, identity and error capture: never throws.
// With `capture_tensors` the probe keeps its output words and golden in result.tensors.
ProbeResult run_probe(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens,
                      bool capture_tensors = false);

// Parses "A" or "AxBxC..." into exactly `count` positive integers (a single value repeats).
Expected<std::vector<std::uint32_t>> parse_dimensions(const std::string& text, std::size_t count);

}  // namespace substrate
