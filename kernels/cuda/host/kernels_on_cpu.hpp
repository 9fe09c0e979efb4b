#pragma once
// The CUDA kernels of kernels/cuda/kernels.cu executed on the CPU (device_runtime.hpp): the
// kernels' logic, not the hardware. For tests: a launch here takes the same parameter block, grid
// and block as cuLaunchKernel does in probes/backends/cuda/cuda_device.cpp, with host addresses
// in place of device pointers.
#include <cstddef>
#include <cstdint>

#include "common/expected.hpp"
#include "kernels/cuda/launch.hpp"

namespace substrate::cuda_on_cpu {

// How an emulated wmma::mma_sync sums C and its 16 products (docs/cuda.md):
// - nearest: exactly, rounded once to nearest fp32 (the correctly rounded mma for the
//   generator's inputs);
// - truncating: the coarsest tensor-core model of docs/cuda.md's bound (Fasi, Higham, Mikaitis,
//   Pranesh 2021): every addend aligned to the largest one's exponent and truncated to fp32's 24
//   bits there (no extra bits), the sum rounded toward zero, and an exact zero sum given the sign
//   -0 (the hardware's sign of zero is undocumented; the kernels must not depend on it).
enum class MmaRounding { nearest, truncating };

// Bytes of dynamic shared memory a block may have (96 KiB, what an sm_86 GPU grants on opt-in).
inline constexpr std::uint32_t k_dynamic_smem_bytes = 96 * 1024;

struct LaunchOptions {
  MmaRounding mma_rounding = MmaRounding::nearest;
  // Host threads that run blocks side by side (each runs one block at a time); 0: one per CPU,
  // at most 4.
  unsigned host_threads = 0;
};

// Runs the kernel named `name` (a cuda_kernels::k_fn_* name) over `grid` x `block` with
// `smem_bytes` of dynamic shared memory and the parameter block `params` of `params_size` bytes,
// and returns when every block has finished. Errors: invalid_argument for an unknown kernel, a
// parameter block of the wrong size, an empty grid or block, more than 1024 threads or more than
// k_dynamic_smem_bytes; device_error for a fault the emulation caught in the kernel (a divergent
// __syncthreads, a wmma operation whose lanes disagree or whose pointer is misaligned), with the
// block, thread and source line.
Status launch(const char* name, cuda_kernels::Dim3 grid, cuda_kernels::Dim3 block, std::uint32_t smem_bytes,
              const void* params, std::size_t params_size, const LaunchOptions& options = {});

template <class Params>
Status launch(const char* name, cuda_kernels::Dim3 grid, cuda_kernels::Dim3 block, std::uint32_t smem_bytes,
              const Params& params, const LaunchOptions& options = {}) {
  return launch(name, grid, block, smem_bytes, &params, sizeof(Params), options);
}

// A device pointer as the kernels' parameter blocks carry it: the host address.
inline std::uint64_t device_pointer(const void* host) { return reinterpret_cast<std::uintptr_t>(host); }

}  // namespace substrate::cuda_on_cpu
