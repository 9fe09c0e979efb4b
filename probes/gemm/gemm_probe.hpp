#pragma once
// The gemm probe: its descriptor, registered in probes/probes.cpp.
#include "probes/core/registry.hpp"

namespace substrate {

ProbeDescriptor gemm_probe();

}  // namespace substrate
