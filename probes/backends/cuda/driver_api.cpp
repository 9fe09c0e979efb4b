#include "probes/backends/cuda/driver_api.hpp"

#include <dlfcn.h>

#include <cstdlib>

namespace substrate::cuda {

namespace {

// dlerror()'s message, copied; the second call releases glibc's buffer for it (otherwise it
// stays allocated until the next dl* failure, which leak checkers report at exit).
std::string take_dlerror(const char* fallback) {
  const char* text = dlerror();
  std::string message = text ? text : fallback;
  (void)dlerror();
  return message;
}

}  // namespace

std::string driver_library_name() {
  const char* override_path = std::getenv("SUBSTRATE_CUDA_LIBRARY");
  if (override_path != nullptr && *override_path != '\0') return override_path;
  return "libcuda.so.1";
}

std::string DriverApi::describe(CUresult result) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (GetErrorName == nullptr || GetErrorName(result, &name) != CUDA_SUCCESS || name == nullptr) {
    return "CUresult " + std::to_string(static_cast<int>(result));
  }
  std::string out = name;
  if (GetErrorString != nullptr && GetErrorString(result, &text) == CUDA_SUCCESS && text != nullptr) {
    out += " (";
    out += text;
    out += ")";
  }
  return out;
}

ResultClass classify_result(CUresult result) {
  switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return {ErrorKind::out_of_memory, false};
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
    case CUDA_ERROR_NOT_PERMITTED:
    case CUDA_ERROR_MPS_CONNECTION_FAILED:
    case CUDA_ERROR_MPS_RPC_FAILURE:
    case CUDA_ERROR_MPS_SERVER_NOT_READY:
    case CUDA_ERROR_MPS_MAX_CLIENTS_REACHED:
    case CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED:
      return {ErrorKind::busy, false};
    case CUDA_ERROR_MPS_CLIENT_TERMINATED:
      return {ErrorKind::busy, true};
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_CONTAINED:
      return {ErrorKind::hardware_fault, true};
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_EXTERNAL_DEVICE:
      return {ErrorKind::device_error, true};
    default:
      // CUDA_ERROR_TENSOR_MEMORY_LEAK (721) is newer than some toolkits this builds with.
      return {ErrorKind::device_error, static_cast<int>(result) == 721};
  }
}

Expected<std::shared_ptr<const DriverApi>> load_driver_api() {
  const std::string name = driver_library_name();
  void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return Error{ErrorKind::unavailable, name + " not found (no NVIDIA driver): " + take_dlerror("dlopen failed")};
  }
  auto fail = [&](std::string message) -> Expected<std::shared_ptr<const DriverApi>> {
    dlclose(handle);
    return Error{ErrorKind::unavailable, name + ": " + message};
  };
  // cuGetProcAddress_v2 (CUDA 12.0) reports why a symbol is missing; drivers older than 12.0
  // lack it, and they could not run kernels built by CUDA 13 anyway.
  (void)dlerror();
  void* entry = dlsym(handle, "cuGetProcAddress_v2");
  if (entry == nullptr) {
    (void)take_dlerror("");
    return fail("no cuGetProcAddress_v2 (driver older than CUDA 12.0, or not libcuda)");
  }
  PFN_cuGetProcAddress_v12000 get_proc = nullptr;
  static_assert(sizeof get_proc == sizeof entry);
  get_proc = reinterpret_cast<PFN_cuGetProcAddress_v12000>(entry);

  auto api = std::make_shared<DriverApi>();
  api->library = name;
  std::string missing;
  auto resolve = [&](const char* symbol, void** slot) {
    CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    const CUresult status = get_proc(symbol, slot, k_driver_abi_version, CU_GET_PROC_ADDRESS_DEFAULT, &found);
    if (status != CUDA_SUCCESS || found != CU_GET_PROC_ADDRESS_SUCCESS || *slot == nullptr) {
      *slot = nullptr;
      if (missing.empty()) {
        missing = std::string(symbol) + " unavailable (cuGetProcAddress status " +
                  std::to_string(static_cast<int>(status)) +
                  (found == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT ? ", version not sufficient"
                   : found == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND     ? ", symbol not found"
                                                                       : "") +
                  ")";
      }
    }
  };
#define SUBSTRATE_CUDA_RESOLVE(fn, version) resolve("cu" #fn, reinterpret_cast<void**>(&api->fn));
  SUBSTRATE_CUDA_DRIVER_FUNCTIONS(SUBSTRATE_CUDA_RESOLVE)
#undef SUBSTRATE_CUDA_RESOLVE
  if (!missing.empty()) return fail("entry point " + missing);
  // Never dlclose a complete driver: contexts and threads it started outlive any one caller.
  return std::shared_ptr<const DriverApi>(std::move(api));
}

}  // namespace substrate::cuda
