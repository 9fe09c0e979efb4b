#pragma once
// The kernels of kernels/cuda/kernels.cu by their cuLaunchKernel names, as compiled for the host
// by kernels_on_cpu.cpp.
#include <cstddef>

namespace substrate::cuda_on_cpu {

using KernelEntry = void (*)(const void* params);

struct KernelInfo {
  const char* name;         // cuda_kernels::k_fn_*
  KernelEntry entry;        // calls the kernel with *params as its parameter block
  std::size_t params_size;  // bytes of that parameter block
};

// The kernel named `name`, or nullptr.
const KernelInfo* find_kernel(const char* name);

}  // namespace substrate::cuda_on_cpu
