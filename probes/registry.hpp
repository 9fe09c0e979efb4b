#pragma once
// Probe descriptors (OpenDCDiag-style): each probe is one file declaring id, description,
// kernels, default enablement, time budget and maturity, plus how to build its default specs
// and how to run one spec. The CLI and the scheduler only see descriptors.
#include <functional>
#include <future>
#include <list>
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
// Bounded by the bytes of the values and bounds held; the least recently used go first.
class GoldenCache {
 public:
  static constexpr std::size_t k_default_max_bytes = std::size_t{256} << 20;
  explicit GoldenCache(std::size_t max_bytes = k_default_max_bytes) : max_bytes_(max_bytes) {}
  std::shared_ptr<const golden::Reference> get(const ProbeSpec& spec,
                                               const std::function<golden::Reference()>& compute);
  // Evicts the least recently used goldens until the cache holds at most `max_bytes`.
  void set_max_bytes(std::size_t max_bytes);
  // The cached golden (counted as a hit), or null.
  std::shared_ptr<const golden::Reference> find(const ProbeSpec& spec);
  std::size_t hits() const;
  std::size_t misses() const;
  std::size_t bytes() const;

 private:
  struct Entry {
    std::shared_ptr<const golden::Reference> reference;
    std::list<std::string>::iterator recency;
    std::size_t bytes;
  };
  void touch(Entry& entry);
  void evict_to(std::size_t max_bytes);  // with mutex_ held

  mutable std::mutex mutex_;
  std::size_t max_bytes_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> recency_;  // least recently used first
  std::size_t bytes_ = 0, hits_ = 0, misses_ = 0;
};

// The golden of one spec, computed on its own thread while the device runs (a cached one is taken
// at once), so a cold run costs max(kernel, golden) instead of their sum.
class GoldenFetch {
 public:
  GoldenFetch(GoldenCache& cache, const ProbeSpec& spec, std::function<golden::Reference()> compute);
  // Waits for it and sets result.golden_seconds to the time spent computing or loading it;
  // rethrows what `compute` threw.
  std::shared_ptr<const golden::Reference> get(ProbeResult& result);

 private:
  std::shared_ptr<const golden::Reference> cached_;
  double cached_seconds_ = 0.0;
  std::future<std::pair<std::shared_ptr<const golden::Reference>, double>> pending_;
};

// Fills what every checked compute run reports: kernel, check, fingerprint, timings, status and,
// when tensors are captured, the output and its golden.
void record_checked_run(ProbeResult& result, KernelRun& run, CheckOutcome check,
                        std::shared_ptr<const golden::Reference> reference, std::vector<std::uint64_t> output_shape);

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
