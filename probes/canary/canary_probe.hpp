#pragma once
// The canary probe: its descriptor, registered in probes/probes.cpp.
#include "probes/core/registry.hpp"

namespace substrate {

ProbeDescriptor canary_probe();

}  // namespace substrate
