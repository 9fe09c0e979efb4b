#pragma once
// Probe descriptors (OpenDCDiag-style). A probe is one file, probes/<id>_probe.cpp, whose struct
// of static members is the only place that knows the probe: id, description, kernels, maturity,
// defaults, the modes, dtypes and backends it has, its shape's size text, spec key, JSON, drill
// geometry and dump inputs, and how to run one spec. describe<P>() checks the struct against
// ProbeDefinition (a missing piece is a compile error) and builds the ProbeDescriptor through
// which the CLI, the daemon, results and dumps reach the probe.
#include <concepts>
#include <functional>
#include <future>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <ranges>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/golden/golden.hpp"
#include "probes/backends/compute_device.hpp"
#include "probes/core/probe_result.hpp"

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
  std::size_t bytes_ = 0, hits_ = 0;
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
// when tensors are captured, the output and its golden. `fingerprint` is fingerprint(run.output_bits)
// (kernels/fingerprint.hpp), or the one check_bounded hashed alongside its comparison.
void record_checked_run(ProbeResult& result, KernelRun& run, CheckOutcome check, std::string fingerprint,
                        std::shared_ptr<const golden::Reference> reference, std::vector<std::uint64_t> output_shape);

// One input of a run regenerated on the CPU from the shared generator, for a dump
// (probes/diagnosis/dump.hpp); each probe says which inputs it has (ProbeDescriptor::dump_inputs).
struct DumpInput {
  std::string name;  // "a", "q", ...
  std::vector<std::uint64_t> shape;
  std::vector<float> values;  // exact values as the device stores them (f16/bf16 widen exactly)
};

// Memory one run of a spec needs, estimated from its shape before anything starts: an upper
// bound for the daemon's admission of on-demand runs (daemon/control_commands.hpp), not a
// measurement. device_bytes: the buffers and readback copy the backend's launch check counts
// (probes/backends/launch_limits.hpp); host_bytes: the worker's own memory for the run (the CPU
// golden's inputs, values and bounds, the output read back). On a CPU device (lavapipe) the
// device's memory is host memory as well; the caller adds the two there.
struct MemoryNeeds {
  std::uint64_t device_bytes = 0;
  std::uint64_t host_bytes = 0;
};

// `bytes` as a byte count, saturated at UINT64_MAX (shapes of 32-bit dimensions multiply past 2^64).
std::uint64_t saturated_bytes(double bytes);

struct ProbeDescriptor {
  std::string id;
  std::string description;
  std::vector<std::string> kernels;
  bool enabled_by_default = true;
  Maturity maturity = Maturity::stable;
  double default_interval_seconds = 300.0;  // between the daemon's scheduled runs
  double default_timeout_seconds = 120.0;   // of one scheduled run, before the device counts as hung
  // The modes and dtypes its specs vary over, which --mode/--dtype and the config's modes/dtypes
  // choose among. Empty: the probe has no such choice and that filter does not apply to it.
  std::vector<Mode> modes;
  std::vector<Dtype> dtypes;
  // The backends (DeviceInfo::backend) that implement it; on any other device a run is skipped.
  std::vector<std::string> backends;
  // Whether a drill names the checkpoint layer it corrupts (`layer=L`).
  bool injects_by_layer = false;
  // Default specs for a device: sizes by device class (the seed is left at 1).
  std::function<std::vector<ProbeSpec>(const DeviceInfo&)> default_specs;
  // Applies a size text ("256", "128x64x32", "64M") to a spec; invalid_argument names the problem.
  std::function<Status(const std::string&, ProbeSpec&)> apply_size;
  // The spec's shape as apply_size reads it ("256x256x256"): its inverse, used by replay commands.
  std::function<std::string(const ProbeSpec&)> shape_text;
  // The stable key of the spec without seed and injection, e.g. "gemm/f32/exact/256x256x256".
  std::function<std::string(const ProbeSpec&)> spec_key;
  // Elements per row of the output a drill corrupts (of checkpoint `layer` for layered probes),
  // so that row=R,col=C means element R*row_length+C; 0 when the layer does not exist.
  std::function<std::uint64_t(const ProbeSpec&, std::uint32_t layer)> row_length;
  // The shape as a JSON object (written under the probe id in a spec's JSON), and back; reading
  // throws nlohmann::json exceptions on a malformed object.
  std::function<void(const ProbeSpec&, nlohmann::json&)> shape_to_json;
  std::function<void(const nlohmann::json&, ProbeSpec&)> shape_from_json;
  // The run's inputs regenerated on the CPU for a dump; empty when it has none worth dumping.
  std::function<std::vector<DumpInput>(const ProbeSpec&)> dump_inputs;
  // The memory one run of a spec needs on `device` (see MemoryNeeds).
  std::function<MemoryNeeds(const ProbeSpec&, const DeviceInfo&)> memory_needs;
  // Runs one spec on a device of one of `backends`: fills kernel, check, fingerprint and timings
  // of `result`; sets status pass or fail, or returns an Error when the device could not run it.
  std::function<Status(ComputeDevice&, const ProbeSpec&, GoldenCache&, ProbeResult&)> run;
};

template <class R, class T>
concept ListOf = std::ranges::range<R> && std::constructible_from<T, std::ranges::range_value_t<R>>;

// What a probe file defines: a struct whose static members fill every field of ProbeDescriptor.
template <class P>
concept ProbeDefinition = requires(const ProbeSpec& spec, ProbeSpec& out, const std::string& text,
                                   const DeviceInfo& info, ComputeDevice& device, GoldenCache& goldens,
                                   ProbeResult& result, nlohmann::json& json, const nlohmann::json& in,
                                   std::uint32_t layer) {
  { P::id } -> std::convertible_to<std::string>;
  { P::description } -> std::convertible_to<std::string>;
  { P::enabled_by_default } -> std::convertible_to<bool>;
  { P::maturity } -> std::convertible_to<Maturity>;
  { P::default_interval_seconds } -> std::convertible_to<double>;
  { P::default_timeout_seconds } -> std::convertible_to<double>;
  { P::injects_by_layer } -> std::convertible_to<bool>;
  requires ListOf<decltype(P::kernels), std::string>;
  requires ListOf<decltype(P::modes), Mode>;
  requires ListOf<decltype(P::dtypes), Dtype>;
  requires ListOf<decltype(P::backends), std::string>;
  { P::default_specs(info) } -> std::same_as<std::vector<ProbeSpec>>;
  { P::apply_size(text, out) } -> std::same_as<Status>;
  { P::shape_text(spec) } -> std::same_as<std::string>;
  { P::spec_key(spec) } -> std::same_as<std::string>;
  { P::row_length(spec, layer) } -> std::same_as<std::uint64_t>;
  { P::shape_to_json(spec, json) } -> std::same_as<void>;
  { P::shape_from_json(in, out) } -> std::same_as<void>;
  { P::dump_inputs(spec) } -> std::same_as<std::vector<DumpInput>>;
  { P::memory_needs(spec, info) } -> std::same_as<MemoryNeeds>;
  { P::run(device, spec, goldens, result) } -> std::same_as<Status>;
};

// The descriptor of probe definition P.
template <ProbeDefinition P>
ProbeDescriptor describe() {
  ProbeDescriptor d;
  d.id = P::id;
  d.description = P::description;
  d.kernels.assign(std::begin(P::kernels), std::end(P::kernels));
  d.enabled_by_default = P::enabled_by_default;
  d.maturity = P::maturity;
  d.default_interval_seconds = P::default_interval_seconds;
  d.default_timeout_seconds = P::default_timeout_seconds;
  d.modes.assign(std::begin(P::modes), std::end(P::modes));
  d.dtypes.assign(std::begin(P::dtypes), std::end(P::dtypes));
  d.backends.assign(std::begin(P::backends), std::end(P::backends));
  d.injects_by_layer = P::injects_by_layer;
  d.default_specs = P::default_specs;
  d.apply_size = P::apply_size;
  d.shape_text = P::shape_text;
  d.spec_key = P::spec_key;
  d.row_length = P::row_length;
  d.shape_to_json = P::shape_to_json;
  d.shape_from_json = P::shape_from_json;
  d.dump_inputs = P::dump_inputs;
  d.memory_needs = P::memory_needs;
  d.run = P::run;
  return d;
}

class ProbeRegistry {
 public:
  // invalid_argument when the id is already registered.
  Status add(ProbeDescriptor descriptor);
  const ProbeDescriptor* find(const std::string& id) const;
  const std::vector<ProbeDescriptor>& all() const { return probes_; }

 private:
  std::vector<ProbeDescriptor> probes_;
};

// The registration table: every built-in probe, in the order `probe --list` shows them. Defined
// by probes/probes.cpp, the one file that names every probe.
const ProbeRegistry& probe_registry();

// The spec's stable key (ProbeDescriptor::spec_key); the bare probe id for an unknown probe.
// Baselines in the daemon's saved state are keyed by it, so a key never changes.
std::string spec_key(const ProbeSpec& spec);

// Whether `spec` has one of `modes` and one of `dtypes`; an empty list, or a dimension the
// probe does not have (memory has neither), selects every spec.
bool spec_selected(const ProbeDescriptor& probe, const ProbeSpec& spec, const std::vector<Mode>& modes,
                   const std::vector<Dtype>& dtypes);

// Parses a drill (`--inject`, the config's `drill`) for `spec`, mapping row=R,col=C through the
// probe's row length; invalid_argument names the bad token.
Expected<Injection> parse_drill(const ProbeDescriptor& probe, const std::string& text, const ProbeSpec& spec);

// The command line that re-runs `result` exactly: "substrated probe --device ID --kernel ID
// [--mode M] [--dtype D] --size SHAPE --seed N [--inject ...]".
std::string replay_command(const ProbeResult& result);

// Runs one spec through its descriptor with timing, identity and error capture: never throws.
// On a device whose backend does not implement the probe the result is skipped (not_implemented)
// and the device is not touched. A probe's error becomes: skipped (out_of_memory or device_busy)
// for ErrorKind::out_of_memory and busy, with the message as skip_reason (a busy GPU is not a
// faulty one); fail with the message in `error` for ErrorKind::hardware_fault (the device's own
// report of an uncorrectable fault is evidence); error otherwise. With `capture_tensors` the probe
// keeps its output words and golden in result.tensors.
ProbeResult run_probe(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, bool capture_tensors = false);

// Parses "A" or "AxBxC..." into exactly `count` positive integers (a single value repeats).
Expected<std::vector<std::uint32_t>> parse_dimensions(const std::string& text, std::size_t count);

}  // namespace substrate
