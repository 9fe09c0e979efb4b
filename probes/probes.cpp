// The registration table of the built-in probes: the one file that names every probe. Shared
// code reaches a probe through its descriptor (probes/core/registry.hpp).
#include <cstdlib>

#include "probes/attention/attention_probe.hpp"
#include "probes/canary/canary_probe.hpp"
#include "probes/core/registry.hpp"
#include "probes/gemm/gemm_probe.hpp"
#include "probes/memory/memory_probe.hpp"

namespace substrate {

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

}  // namespace substrate
