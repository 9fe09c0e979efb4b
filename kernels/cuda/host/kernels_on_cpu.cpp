// kernels/cuda/kernels.cu compiled by the host compiler through the execution shim: the same
// source nvcc compiles, included here, not a copy.
#include "kernels/cuda/host/device_runtime.hpp"
// The shim must come first: it defines the CUDA keywords, builtins and wmma the kernels use.
#include "kernels/cuda/host/kernel_table.hpp"
#include "kernels/cuda/kernels.cu"

#include <cstring>

namespace substrate::cuda_on_cpu {
namespace {

template <class Params, void (*Kernel)(Params)>
KernelInfo entry(const char* name) {
  return {name, [](const void* params) { Kernel(*static_cast<const Params*>(params)); }, sizeof(Params)};
}

}  // namespace

const KernelInfo* find_kernel(const char* name) {
  static const KernelInfo table[] = {
      entry<FillParams, substrate_fill>(k_fn_fill),
      entry<RawParams, substrate_generate_raw>(k_fn_generate_raw),
      entry<GemmParams, substrate_gemm_simt>(k_fn_gemm_simt),
      entry<GemmParams, substrate_gemm_wmma_f16>(k_fn_gemm_wmma_f16),
      entry<GemmParams, substrate_gemm_wmma_bf16>(k_fn_gemm_wmma_bf16),
      entry<AttentionParams, substrate_attention>(k_fn_attention),
      entry<MemoryParams, substrate_memory>(k_fn_memory),
  };
  for (const KernelInfo& kernel : table)
    if (std::strcmp(kernel.name, name) == 0) return &kernel;
  return nullptr;
}

}  // namespace substrate::cuda_on_cpu
