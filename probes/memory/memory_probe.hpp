#pragma once
// The memory probe: its descriptor, registered in probes/probes.cpp.
#include "probes/core/registry.hpp"

namespace substrate {

ProbeDescriptor memory_probe();

}  // namespace substrate
