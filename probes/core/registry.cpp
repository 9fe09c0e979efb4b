#include "probes/core/registry.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <sstream>

namespace substrate {

const char* to_string(Maturity maturity) { return maturity == Maturity::stable ? "stable" : "beta"; }

namespace {

std::string golden_key(const ProbeSpec& spec) { return spec_key(spec) + "#" + std::to_string(spec.seed); }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::shared_ptr<const golden::Reference> GoldenCache::get(const ProbeSpec& spec,
                                                          const std::function<golden::Reference()>& compute) {
  if (auto cached = find(spec)) return cached;
  auto computed = std::make_shared<const golden::Reference>(compute());
  const std::size_t size = (computed->value.size() + computed->bound.size()) * sizeof(double);
  const std::string key = golden_key(spec);
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) return it->second.reference;  // raced: keep the first
  if (size > max_bytes_) return computed;
  evict_to(max_bytes_ - size);
  recency_.push_back(key);
  entries_.emplace(key, Entry{computed, std::prev(recency_.end()), size});
  bytes_ += size;
  return computed;
}

void GoldenCache::touch(Entry& entry) { recency_.splice(recency_.end(), recency_, entry.recency); }

void GoldenCache::evict_to(std::size_t max_bytes) {
  while (bytes_ > max_bytes) {
    auto oldest = entries_.find(recency_.front());
    bytes_ -= oldest->second.bytes;
    entries_.erase(oldest);
    recency_.pop_front();
  }
}

void GoldenCache::set_max_bytes(std::size_t max_bytes) {
  std::lock_guard lock(mutex_);
  max_bytes_ = max_bytes;
  evict_to(max_bytes_);
}

std::size_t GoldenCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::shared_ptr<const golden::Reference> GoldenCache::find(const ProbeSpec& spec) {
  const std::string key = golden_key(spec);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  ++hits_;
  touch(it->second);
  return it->second.reference;
}

GoldenFetch::GoldenFetch(GoldenCache& cache, const ProbeSpec& spec, std::function<golden::Reference()> compute) {
  const auto started = std::chrono::steady_clock::now();
  cached_ = cache.find(spec);
  cached_seconds_ = seconds_since(started);
  if (cached_) return;
  pending_ = std::async(std::launch::async, [&cache, spec, compute = std::move(compute)] {
    const auto computing = std::chrono::steady_clock::now();
    auto reference = cache.get(spec, compute);
    return std::pair{std::move(reference), seconds_since(computing)};
  });
}

std::shared_ptr<const golden::Reference> GoldenFetch::get(ProbeResult& result) {
  if (cached_) {
    result.golden_seconds = cached_seconds_;
    return cached_;
  }
  auto [reference, seconds] = pending_.get();
  result.golden_seconds = seconds;
  return reference;
}

void record_checked_run(ProbeResult& result, KernelRun& run, CheckOutcome check, std::string fingerprint,
                        std::shared_ptr<const golden::Reference> reference, std::vector<std::uint64_t> output_shape) {
  result.kernel = std::move(run.kernel);
  result.check = std::move(check);
  result.fingerprint = std::move(fingerprint);
  result.device_seconds = run.device_seconds;
  result.generate_seconds = run.generate_seconds;
  result.status = result.check.pass ? RunStatus::pass : RunStatus::fail;
  if (result.tensors) {
    *result.tensors = RunTensors{std::move(output_shape), std::move(run.output_bits), std::move(reference), {}};
  }
}

std::size_t GoldenCache::hits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

Status ProbeRegistry::add(ProbeDescriptor descriptor) {
  if (find(descriptor.id))
    return Error{ErrorKind::invalid_argument, "probe id '" + descriptor.id + "' registered twice"};
  probes_.push_back(std::move(descriptor));
  return ok_status();
}

const ProbeDescriptor* ProbeRegistry::find(const std::string& id) const {
  auto it = std::find_if(probes_.begin(), probes_.end(), [&](const ProbeDescriptor& p) { return p.id == id; });
  return it == probes_.end() ? nullptr : &*it;
}

std::string spec_key(const ProbeSpec& spec) {
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  return probe ? probe->spec_key(spec) : spec.probe;
}

bool spec_selected(const ProbeDescriptor& probe, const ProbeSpec& spec, const std::vector<Mode>& modes,
                   const std::vector<Dtype>& dtypes) {
  auto chosen = [](const auto& has, const auto& wanted, auto value) {
    return has.empty() || wanted.empty() || std::find(wanted.begin(), wanted.end(), value) != wanted.end();
  };
  return chosen(probe.modes, modes, spec.mode) && chosen(probe.dtypes, dtypes, spec.dtype);
}

Expected<Injection> parse_drill(const ProbeDescriptor& probe, const std::string& text, const ProbeSpec& spec) {
  // The row length can depend on the layer, which the same text names: read that first.
  TRY_ASSIGN(auto layer, parse_injection(text, 0));
  return parse_injection(text, probe.row_length(spec, layer.layer));
}

std::string replay_command(const ProbeResult& result) {
  const ProbeSpec& spec = result.spec;
  std::ostringstream out;
  out << "substrated probe --device " << result.device.id << " --kernel " << spec.probe;
  if (const ProbeDescriptor* probe = probe_registry().find(spec.probe)) {
    // A filter only where the probe offers a choice: the size alone picks among the rest.
    if (probe->modes.size() > 1) out << " --mode " << to_string(spec.mode);
    if (probe->dtypes.size() > 1) out << " --dtype " << to_string(spec.dtype);
    out << " --size " << probe->shape_text(spec);
    out << " --seed " << spec.seed;
    if (spec.inject.enabled) {
      out << " --inject ";
      for (int bit = 0; bit < 32; ++bit) {
        if (spec.inject.xor_mask & (1u << bit)) out << "bit=" << bit << ",";
      }
      out << "element=" << spec.inject.element << (spec.inject.transient ? ",transient" : "");
      if (is_pattern(spec.inject)) {
        out << ",count="
            << (spec.inject.count == k_inject_to_end ? std::string("all") : std::to_string(spec.inject.count))
            << ",stride=" << spec.inject.stride;
      }
      if (probe->injects_by_layer) out << ",layer=" << spec.inject.layer;
    }
  }
  return out.str();
}

ProbeResult run_probe(ComputeDevice& device, const ProbeSpec& spec, GoldenCache& goldens, bool capture_tensors) {
  ProbeResult result;
  result.device = device.info();
  result.spec = spec;
  if (capture_tensors) result.tensors = std::make_shared<RunTensors>();
  const auto started = std::chrono::steady_clock::now();
  const ProbeDescriptor* descriptor = probe_registry().find(spec.probe);
  Status status = descriptor ? Status(ok_status())
                             : Status(Error{ErrorKind::invalid_argument, "unknown probe '" + spec.probe + "'"});
  const std::string& backend = result.device.backend;
  if (descriptor &&
      std::find(descriptor->backends.begin(), descriptor->backends.end(), backend) == descriptor->backends.end()) {
    result.status = RunStatus::skipped;
    result.skip_kind = SkipKind::not_implemented;
    result.skip_reason = "not implemented on the " + backend + " backend";
  } else if (status.ok()) {
    try {
      status = device.open();
      // Opening may have loaded the kernels: the result names the image that ran.
      result.device.kernel_image = device.info().kernel_image;
      if (status.ok()) status = descriptor->run(device, spec, goldens, result);
    } catch (const std::exception& e) {
      status = Error{ErrorKind::device_error, std::string("probe threw: ") + e.what()};
    }
  }
  if (!status.ok()) {
    const Error& error = status.error();
    if (error.kind == ErrorKind::out_of_memory || error.kind == ErrorKind::busy) {
      // A healthy device whose memory or compute is taken by a workload: not a fault, not an error.
      result.status = RunStatus::skipped;
      result.skip_kind = error.kind == ErrorKind::out_of_memory ? SkipKind::out_of_memory : SkipKind::device_busy;
      result.skip_reason = error.message;
    } else {
      // hardware_fault: the device reported an uncorrectable fault; that is evidence, a fail.
      result.status = error.kind == ErrorKind::hardware_fault ? RunStatus::fail : RunStatus::error;
      if (result.status == RunStatus::fail) result.check.pass = false;
      result.error = error.message;
      result.error_kind = error.kind;
    }
  }
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.finished_at = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return result;
}

std::uint64_t saturated_bytes(double bytes) {
  // 2^64 itself does not fit; anything at or above it (or NaN) is "more than any memory".
  if (!(bytes < 18446744073709551616.0)) return UINT64_MAX;
  return bytes > 0 ? static_cast<std::uint64_t>(bytes) : 0;
}

Expected<std::vector<std::uint32_t>> parse_dimensions(const std::string& text, std::size_t count) {
  // Strict like --seed: decimal digits only (no sign, no space), no empty part, so "8x", "x8",
  // "8xx8", " 8" and "+8" are refused instead of read loosely.
  std::vector<std::uint32_t> values;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(text.find('x', start), text.size());
    const std::string part = text.substr(start, end - start);
    std::uint32_t value = 0;
    const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    const bool digits_only =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits_only || ec != std::errc{} || ptr != part.data() + part.size() || value == 0 || value > (1u << 20)) {
      return Error{ErrorKind::invalid_argument, "size '" + text + "': '" + part + "' is not an integer in 1..1048576"};
    }
    values.push_back(value);
    if (end == text.size()) break;
    start = end + 1;
  }
  if (values.size() == 1) values.assign(count, values[0]);
  if (values.size() != count) {
    return Error{ErrorKind::invalid_argument,
                 "size '" + text + "': expected 1 or " + std::to_string(count) + " dimensions separated by 'x'"};
  }
  return values;
}

}  // namespace substrate
