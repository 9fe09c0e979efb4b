#pragma once
// The CUDA backend's public face. No CUDA header here: the driver is loaded at run time, so
// this compiles and links on hosts without any NVIDIA software.
#include <string>
#include <vector>

#include "probes/backends/compute_device.hpp"

namespace substrate::cuda {

// Appends one device per CUDA device ("cuda0", "cuda1", ... by CUDA ordinal) to `devices`.
// Never throws; every reason for finding nothing becomes one line in `notes`, e.g.
//   "cuda: libcuda.so.1 not found (no NVIDIA driver): ..."
//   "cuda: no CUDA devices (cuInit: CUDA_ERROR_NO_DEVICE (...))"
//   "cuda: cuda1 (NVIDIA ...) unusable: cuModuleLoadData: ..."
// $SUBSTRATE_CUDA_LIBRARY, when set, names the driver library to load instead of libcuda.so.1.
void discover(std::vector<DevicePtr>& devices, std::vector<std::string>& notes);

// Which GEMM hardware path run_gemm uses. automatic: tensor cores for f16 and bf16 where the
// device has them (bf16 needs sm_80), CUDA cores otherwise. KernelRun::kernel names the path
// that ran: "cuda.gemm.simt64" or "cuda.gemm.wmma16".
enum class GemmPath { automatic, cuda_cores, tensor_cores };

// What a CUDA device offers beyond ComputeDevice (reach it with dynamic_cast).
class CudaDevice : public ComputeDevice {
 public:
  virtual void set_gemm_path(GemmPath path) = 0;
  virtual GemmPath gemm_path() const = 0;
  // 10 * major + minor, e.g. 90 for sm_90.
  virtual int compute_capability() const = 0;
};

}  // namespace substrate::cuda
