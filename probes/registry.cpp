#include "probes/registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>

namespace substrate {

const char* to_string(Maturity maturity) { return maturity == Maturity::stable ? "stable" : "beta"; }

std::shared_ptr<const golden::Reference> GoldenCache::get(const ProbeSpec& spec,
                                                          const std::function<golden::Reference()>& compute) {
  const std::string key = spec_key(spec) + "#" + std::to_string(spec.seed);
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      ++hits_;
      return it->second;
    }
    ++misses_;
  }
  auto computed = std::make_shared<const golden::Reference>(compute());
  std::lock_guard lock(mutex_);
  if (!entries_.count(key)) {
    order_.push_back(key);
    if (order_.size() > max_entries_) {
      entries_.erase(order_.front());
      order_.erase(order_.begin());
    }
  }
  entries_[key] = computed;
  return computed;
}

std::size_t GoldenCache::hits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

std::size_t GoldenCache::misses() const {
  std::lock_guard lock(mutex_);
  return misses_;
}

Status ProbeRegistry::add(ProbeDescriptor descriptor) {
  if (find(descriptor.id)) return Error{ErrorKind::invalid_argument, "probe id '" + descriptor.id + "' registered twice"};
  probes_.push_back(std::move(descriptor));
  return ok_status();
}

const ProbeDescriptor* ProbeRegistry::find(const std::string& id) const {
  auto it = std::find_if(probes_.begin(), probes_.end(), [&](const ProbeDescriptor& p) { return p.id == id; });
  return it == probes_.end() ? nullptr : &*it;
}

const ProbeRegistry& probe_registry() {
  static const ProbeRegistry registry = [] {
    ProbeRegistry r;
    for (auto make : {gemm_probe, attention_probe, memory_probe, canary_probe}) {
      if (!r.add(make()).ok()) std::abort();  // a duplicate built-in id is a programming error
    }
    return r;
  }();
  return registry;
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
  if (status.ok()) {
    try {
      status = descriptor->run(device, spec, goldens, result);
    } catch (const std::exception& e) {
      status = Error{ErrorKind::device_error, std::string("probe threw: ") + e.what()};
    }
  }
  if (!status.ok()) {
    result.status = RunStatus::error;
    result.error = status.error().message;
    result.error_kind = status.error().kind;
  }
  result.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.finished_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return result;
}

Expected<std::vector<std::uint32_t>> parse_dimensions(const std::string& text, std::size_t count) {
  std::vector<std::uint32_t> values;
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, 'x')) {
    char* end = nullptr;
    const unsigned long value = std::strtoul(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || value == 0 || value > (1u << 20)) {
      return Error{ErrorKind::invalid_argument, "size '" + text + "': '" + part + "' is not an integer in 1..1048576"};
    }
    values.push_back(static_cast<std::uint32_t>(value));
  }
  if (values.size() == 1) values.assign(count, values[0]);
  if (values.size() != count) {
    return Error{ErrorKind::invalid_argument,
                 "size '" + text + "': expected 1 or " + std::to_string(count) + " dimensions separated by 'x'"};
  }
  return values;
}

}  // namespace substrate
