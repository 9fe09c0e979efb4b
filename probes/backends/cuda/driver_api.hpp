#pragma once
// The CUDA driver API, resolved at run time. Internal to the CUDA backend: the only place
// besides cuda_device.cpp that sees cuda.h, which is used for types only (nothing links
// libcuda). dlopen("libcuda.so.1") (or $SUBSTRATE_CUDA_LIBRARY), dlsym of cuGetProcAddress_v2
// alone, then every entry point through cuGetProcAddress with an explicit ABI version: plain
// dlsym of an unversioned name binds the oldest ABI (cuMemAlloc would take a 32-bit size).
#include <cuda.h>
#include <cudaTypedefs.h>

#include <memory>
#include <string>

#include "common/expected.hpp"

namespace substrate::cuda {

// Entry points are requested as of CUDA 12.0: each typedef below is the newest version of the
// function at or before 12.0, so the ABI the driver hands back is the one the pointer type
// describes (cuEventElapsedTime_v2, from 12.8, is deliberately not requested).
inline constexpr int k_driver_abi_version = 12000;

// X(short name, typedef version): the symbol is "cu" + name, the type PFN_cu<name>_v<version>.
#define SUBSTRATE_CUDA_DRIVER_FUNCTIONS(X) \
  X(Init, 2000)                            \
  X(DriverGetVersion, 2020)                \
  X(GetErrorName, 6000)                    \
  X(GetErrorString, 6000)                  \
  X(DeviceGetCount, 2000)                  \
  X(DeviceGet, 2000)                       \
  X(DeviceGetName, 2000)                   \
  X(DeviceGetUuid, 11040)                  \
  X(DeviceGetPCIBusId, 4010)               \
  X(DeviceGetAttribute, 2000)              \
  X(DeviceTotalMem, 3020)                  \
  X(DevicePrimaryCtxRetain, 7000)          \
  X(DevicePrimaryCtxRelease, 11000)        \
  X(CtxSetCurrent, 4000)                   \
  X(ModuleLoadData, 2000)                  \
  X(ModuleUnload, 2000)                    \
  X(ModuleGetFunction, 2000)               \
  X(FuncSetAttribute, 9000)                \
  X(LaunchKernel, 4000)                    \
  X(StreamCreate, 2000)                    \
  X(StreamDestroy, 4000)                   \
  X(StreamQuery, 2000)                     \
  X(EventCreate, 2000)                     \
  X(EventDestroy, 4000)                    \
  X(EventRecord, 2000)                     \
  X(EventQuery, 2000)                      \
  X(EventElapsedTime, 2000)                \
  X(MemAlloc, 3020)                        \
  X(MemFree, 3020)                         \
  X(MemAllocHost, 3020)                    \
  X(MemFreeHost, 2000)                     \
  X(MemcpyDtoHAsync, 3020)                 \
  X(MemsetD32Async, 3020)                  \
  X(MemGetInfo, 3020)

struct DriverApi {
  std::string library;  // what was dlopen()ed
#define SUBSTRATE_CUDA_DECLARE(name, version) PFN_cu##name##_v##version name = nullptr;
  SUBSTRATE_CUDA_DRIVER_FUNCTIONS(SUBSTRATE_CUDA_DECLARE)
#undef SUBSTRATE_CUDA_DECLARE

  // "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
  std::string describe(CUresult result) const;
};

// What a failed CUresult means for a probe run (cuda.h's documentation of each code):
//   out_of_memory  CUDA_ERROR_OUT_OF_MEMORY (2): at context creation, allocation, or a launch
//                  (lazy module loading, the default since CUDA 12.2). A workload holds the memory.
//   busy           CUDA_ERROR_DEVICE_UNAVAILABLE (46, exclusive compute mode held by another
//                  process), NOT_PERMITTED (800), the MPS errors 805-810.
//   hardware_fault CUDA_ERROR_ECC_UNCORRECTABLE (214), CUDA_ERROR_CONTAINED (226): the GPU
//                  reported an uncorrectable error: evidence against the device.
//   device_error   anything else (CUDA_ERROR_ILLEGAL_ADDRESS, 700, included: a kernel bug is as
//                  likely as a fault).
// sticky: cuda.h says the process is left in an inconsistent state and must be terminated and
// relaunched: 214, 226, 700, 702, 710 (assert: the context must be destroyed), 714-719, 721,
// 810 (MPS client terminated), 911.
struct ResultClass {
  ErrorKind kind = ErrorKind::device_error;
  bool sticky = false;
};
ResultClass classify_result(CUresult result);

// Loads the driver library and resolves every entry point. Errors are `unavailable` with one
// line naming the cause ("libcuda.so.1 not found (no NVIDIA driver): ..."). The library stays
// loaded for the life of the process once it loaded completely.
Expected<std::shared_ptr<const DriverApi>> load_driver_api();

// The library name tried: $SUBSTRATE_CUDA_LIBRARY when set and non-empty, else libcuda.so.1.
std::string driver_library_name();

}  // namespace substrate::cuda
