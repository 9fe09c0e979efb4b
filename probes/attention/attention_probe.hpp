#pragma once
// The attention probe: its descriptor, registered in probes/probes.cpp.
#include "probes/core/registry.hpp"

namespace substrate {

ProbeDescriptor attention_probe();

}  // namespace substrate
