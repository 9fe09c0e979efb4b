// A stand-in for libcuda.so.1, loaded by the CUDA backend through $SUBSTRATE_CUDA_LIBRARY in
// tests on hosts without an NVIDIA driver. It exports only cuGetProcAddress_v2, as the real
// driver does for versioned lookups, and hands out entry points that emulate one device whose
// "device memory" is host memory and whose kernels do nothing. It exercises the backend's host
// side: loading, entry-point resolution, error mapping, device identity, module/function
// lookup against the real embedded fatbin, launch geometry, readback, and the hang timeout.
// $SUBSTRATE_FAKE_CUDA picks the behaviour (read on every call):
//   device (default)  one healthy device
//   no_device         cuInit returns CUDA_ERROR_NO_DEVICE
//   missing_symbol    cuGetProcAddress does not know cuMemAlloc
//   no_binary         cuModuleLoadData returns CUDA_ERROR_NO_BINARY_FOR_GPU, driver reports 12.8
//   hang              events never complete
// $SUBSTRATE_FAKE_CUDA_FAIL injects driver errors (read on every call; docs/testing.md):
//   <entry point>=<CUresult>[@<n>][,...]   e.g. cuMemAlloc=2  cuLaunchKernel=214@3
// makes that entry point return the code from its n-th call on (default: the first). A sticky
// code (214, 226, 700) then comes back from every injectable call, as cuda.h says a poisoned
// context does. Calls are counted per process from when the spec last changed. "@FILE" reads the
// spec from FILE's first line on every call, so a test can change it under a running daemon
// (each worker is a process of its own and inherits the variable). Injectable:
// cuDevicePrimaryCtxRetain, cuCtxSetCurrent, cuModuleLoadData, cuStreamCreate, cuLaunchKernel,
// cuEventRecord, cuEventQuery, cuMemAlloc, cuMemAllocHost, cuMemcpyDtoHAsync, cuMemsetD32Async,
// cuMemGetInfo.
#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/launch.hpp"

namespace {

namespace ck = substrate::cuda_kernels;

std::string mode() {
  const char* m = std::getenv("SUBSTRATE_FAKE_CUDA");
  return m ? m : "device";
}

std::mutex g_inject_mutex;
std::string g_inject_spec;
std::map<std::string, int> g_inject_calls;
CUresult g_sticky = CUDA_SUCCESS;
int g_live_allocations = 0;

bool sticky_code(int code) { return code == 214 || code == 226 || code == 700; }

// What $SUBSTRATE_FAKE_CUDA_FAIL makes `call` return now (CUDA_SUCCESS: behave normally).
CUresult injected(const char* call) {
  const char* env = std::getenv("SUBSTRATE_FAKE_CUDA_FAIL");
  std::string spec = env ? env : "";
  if (!spec.empty() && spec[0] == '@') {  // "@FILE": the spec is the file's first line, re-read each call
    std::ifstream in(spec.substr(1));
    spec.clear();
    std::getline(in, spec);
    while (!spec.empty() && (spec.back() == '\n' || spec.back() == '\r' || spec.back() == ' ')) spec.pop_back();
  }
  std::lock_guard lock(g_inject_mutex);
  if (spec != g_inject_spec) {
    g_inject_spec = spec;
    g_inject_calls.clear();
    g_sticky = CUDA_SUCCESS;
  }
  if (spec.empty()) return CUDA_SUCCESS;
  if (g_sticky != CUDA_SUCCESS) return g_sticky;
  const int n = ++g_inject_calls[call];
  std::size_t start = 0;
  while (start <= spec.size()) {
    std::size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(start, end - start);
    start = end + 1;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || item.substr(0, eq) != call) continue;
    const std::size_t at = item.find('@', eq);
    const int code = std::atoi(item.substr(eq + 1, at == std::string::npos ? std::string::npos : at - eq - 1).c_str());
    const int from = at == std::string::npos ? 1 : std::atoi(item.substr(at + 1).c_str());
    if (n < from) continue;
    if (sticky_code(code)) g_sticky = static_cast<CUresult>(code);
    return static_cast<CUresult>(code);
  }
  return CUDA_SUCCESS;
}
#define FAKE_INJECT(call)                                               \
  do {                                                                  \
    if (const CUresult r = injected(call); r != CUDA_SUCCESS) return r; \
  } while (false)

struct LaunchRecord {
  std::string name;
  unsigned dims[6] = {};
  unsigned smem = 0;
  unsigned char params[128] = {};
};

std::mutex g_mutex;
const unsigned char* g_image = nullptr;
std::size_t g_image_size = 0;
std::map<CUfunction, std::string> g_functions;
std::vector<std::string> g_names;
LaunchRecord g_last;
int g_launches = 0;
int g_context_token, g_module_token, g_stream_token, g_event_tokens[64];
int g_next_event = 0;

CUresult CUDAAPI fake_init(unsigned int) { return mode() == "no_device" ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS; }
CUresult CUDAAPI fake_driver_get_version(int* version) {
  *version = mode() == "no_binary" ? 12080 : 13000;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_get_error_name(CUresult error, const char** out) {
  switch (error) {
    case CUDA_SUCCESS:
      *out = "CUDA_SUCCESS";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NO_DEVICE:
      *out = "CUDA_ERROR_NO_DEVICE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
      *out = "CUDA_ERROR_NO_BINARY_FOR_GPU";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NOT_FOUND:
      *out = "CUDA_ERROR_NOT_FOUND";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_IMAGE:
      *out = "CUDA_ERROR_INVALID_IMAGE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_OUT_OF_MEMORY:
      *out = "CUDA_ERROR_OUT_OF_MEMORY";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NOT_READY:
      *out = "CUDA_ERROR_NOT_READY";
      return CUDA_SUCCESS;
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
      *out = "CUDA_ERROR_DEVICE_UNAVAILABLE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NOT_PERMITTED:
      *out = "CUDA_ERROR_NOT_PERMITTED";
      return CUDA_SUCCESS;
    case CUDA_ERROR_MPS_CONNECTION_FAILED:
      *out = "CUDA_ERROR_MPS_CONNECTION_FAILED";
      return CUDA_SUCCESS;
    case CUDA_ERROR_ECC_UNCORRECTABLE:
      *out = "CUDA_ERROR_ECC_UNCORRECTABLE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_CONTAINED:
      *out = "CUDA_ERROR_CONTAINED";
      return CUDA_SUCCESS;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
      *out = "CUDA_ERROR_ILLEGAL_ADDRESS";
      return CUDA_SUCCESS;
    default:
      *out = nullptr;
      return CUDA_ERROR_INVALID_VALUE;
  }
}
CUresult CUDAAPI fake_get_error_string(CUresult error, const char** out) {
  switch (error) {
    case CUDA_ERROR_NO_DEVICE:
      *out = "no CUDA-capable device is detected";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
      *out = "no kernel image is available for execution on the device";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NOT_FOUND:
      *out = "named symbol not found";
      return CUDA_SUCCESS;
    case CUDA_ERROR_OUT_OF_MEMORY:
      *out = "out of memory";
      return CUDA_SUCCESS;
    case CUDA_ERROR_ECC_UNCORRECTABLE:
      *out = "uncorrectable ECC error encountered";
      return CUDA_SUCCESS;
    case CUDA_ERROR_CONTAINED:
      *out = "a contained error was encountered on the device";
      return CUDA_SUCCESS;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
      *out = "an illegal memory access was encountered";
      return CUDA_SUCCESS;
    default:
      *out = "fake error";
      return CUDA_SUCCESS;
  }
}
CUresult CUDAAPI fake_device_get_count(int* count) {
  *count = 1;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get(CUdevice* device, int ordinal) {
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_name(char* name, int len, CUdevice) {
  std::snprintf(name, static_cast<std::size_t>(len), "%s", "Fake GPU 80GB");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_uuid(CUuuid* uuid, CUdevice) {
  const unsigned char bytes[16] = {0xAB, 0x12, 0x00, 0xFF, 0x01, 0x02, 0x03, 0x04,
                                   0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0xCD};
  std::memcpy(uuid->bytes, bytes, 16);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_pci_bus_id(char* bus, int len, CUdevice) {
  std::snprintf(bus, static_cast<std::size_t>(len), "%s", "00000000:3B:00.0");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_attribute(int* value, CUdevice_attribute attribute, CUdevice) {
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      *value = 9;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      *value = 0;
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      *value = 132;
      break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
      *value = 0;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
      *value = 232448;
      break;
    default:
      return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_total_mem(std::size_t* bytes, CUdevice) {
  *bytes = std::size_t{80} << 30;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_primary_ctx_retain(CUcontext* context, CUdevice) {
  FAKE_INJECT("cuDevicePrimaryCtxRetain");
  *context = reinterpret_cast<CUcontext>(&g_context_token);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_primary_ctx_release(CUdevice) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_ctx_set_current(CUcontext) {
  FAKE_INJECT("cuCtxSetCurrent");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_module_load_data(CUmodule* module, const void* image) {
  if (mode() == "no_binary") return CUDA_ERROR_NO_BINARY_FOR_GPU;
  FAKE_INJECT("cuModuleLoadData");
  const auto* bytes = static_cast<const unsigned char*>(image);
  std::uint32_t magic;
  std::memcpy(&magic, bytes, 4);
  if (magic != 0xBA55ED50u) return CUDA_ERROR_INVALID_IMAGE;
  std::uint16_t header;
  std::uint64_t payload;
  std::memcpy(&header, bytes + 6, 2);
  std::memcpy(&payload, bytes + 8, 8);
  std::lock_guard lock(g_mutex);
  g_image = bytes;
  g_image_size = header + payload;
  *module = reinterpret_cast<CUmodule>(&g_module_token);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_module_unload(CUmodule) { return CUDA_SUCCESS; }
// A function exists when its NUL-terminated name occurs in the image (the ELF symbol tables
// inside the fatbin hold the extern "C" kernel names).
CUresult CUDAAPI fake_module_get_function(CUfunction* function, CUmodule, const char* name) {
  std::lock_guard lock(g_mutex);
  const std::size_t length = std::strlen(name) + 1;
  if (g_image == nullptr || memmem(g_image, g_image_size, name, length) == nullptr) return CUDA_ERROR_NOT_FOUND;
  // One token per distinct name, kept in a fixed table (no allocation the test could leak).
  static char tokens[32];
  std::size_t slot = 0;
  while (slot < g_names.size() && g_names[slot] != name) ++slot;
  if (slot == g_names.size()) {
    if (slot == sizeof tokens) return CUDA_ERROR_OUT_OF_MEMORY;
    g_names.push_back(name);
  }
  *function = reinterpret_cast<CUfunction>(&tokens[slot]);
  g_functions[*function] = name;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_func_set_attribute(CUfunction, CUfunction_attribute, int) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_launch_kernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                    unsigned bz, unsigned smem, CUstream, void** params, void**) {
  FAKE_INJECT("cuLaunchKernel");
  std::lock_guard lock(g_mutex);
  LaunchRecord record;
  record.name = g_functions[f];
  const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
  std::memcpy(record.dims, dims, sizeof dims);
  record.smem = smem;
  std::size_t size = 0;
  if (record.name == ck::k_fn_fill)
    size = sizeof(ck::FillParams);
  else if (record.name == ck::k_fn_generate_raw)
    size = sizeof(ck::RawParams);
  else if (record.name == ck::k_fn_attention)
    size = sizeof(ck::AttentionParams);
  else if (record.name == ck::k_fn_memory)
    size = sizeof(ck::MemoryParams);
  else
    size = sizeof(ck::GemmParams);
  std::memcpy(record.params, params[0], size);
  g_last = record;
  ++g_launches;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_stream_create(CUstream* stream, unsigned int) {
  FAKE_INJECT("cuStreamCreate");
  *stream = reinterpret_cast<CUstream>(&g_stream_token);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_stream_destroy(CUstream) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_stream_query(CUstream) { return mode() == "hang" ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS; }
CUresult CUDAAPI fake_event_create(CUevent* event, unsigned int) {
  std::lock_guard lock(g_mutex);
  *event = reinterpret_cast<CUevent>(&g_event_tokens[g_next_event++ % 64]);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_destroy(CUevent) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_event_record(CUevent, CUstream) {
  FAKE_INJECT("cuEventRecord");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_query(CUevent) {
  FAKE_INJECT("cuEventQuery");
  return mode() == "hang" ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_elapsed_time(float* ms, CUevent, CUevent) {
  *ms = 1.5f;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_alloc(CUdeviceptr* ptr, std::size_t bytes) {
  FAKE_INJECT("cuMemAlloc");
  if (bytes > (std::size_t{1} << 31)) return CUDA_ERROR_OUT_OF_MEMORY;  // keep the host safe
  void* memory = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (memory == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  *ptr = reinterpret_cast<CUdeviceptr>(memory);
  std::lock_guard lock(g_inject_mutex);
  ++g_live_allocations;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_free(CUdeviceptr ptr) {
  std::free(reinterpret_cast<void*>(ptr));
  std::lock_guard lock(g_inject_mutex);
  --g_live_allocations;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_alloc_host(void** ptr, std::size_t bytes) {
  FAKE_INJECT("cuMemAllocHost");
  *ptr = std::malloc(bytes == 0 ? 1 : bytes);
  return *ptr ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
CUresult CUDAAPI fake_mem_free_host(void* ptr) {
  std::free(ptr);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_memcpy_dtoh_async(void* dst, CUdeviceptr src, std::size_t bytes, CUstream) {
  FAKE_INJECT("cuMemcpyDtoHAsync");
  std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_memset_d32_async(CUdeviceptr dst, unsigned int value, std::size_t count, CUstream) {
  FAKE_INJECT("cuMemsetD32Async");
  auto* words = reinterpret_cast<unsigned int*>(dst);
  for (std::size_t i = 0; i < count; ++i) words[i] = value;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_get_info(std::size_t* free, std::size_t* total) {
  FAKE_INJECT("cuMemGetInfo");
  *free = std::size_t{70} << 30;
  *total = std::size_t{80} << 30;
  return CUDA_SUCCESS;
}

struct Entry {
  const char* name;
  void* function;
};
#define FAKE(name, fn) \
  Entry { name, reinterpret_cast<void*>(&fn) }
const Entry k_entries[] = {
    FAKE("cuInit", fake_init),
    FAKE("cuDriverGetVersion", fake_driver_get_version),
    FAKE("cuGetErrorName", fake_get_error_name),
    FAKE("cuGetErrorString", fake_get_error_string),
    FAKE("cuDeviceGetCount", fake_device_get_count),
    FAKE("cuDeviceGet", fake_device_get),
    FAKE("cuDeviceGetName", fake_device_get_name),
    FAKE("cuDeviceGetUuid", fake_device_get_uuid),
    FAKE("cuDeviceGetPCIBusId", fake_device_get_pci_bus_id),
    FAKE("cuDeviceGetAttribute", fake_device_get_attribute),
    FAKE("cuDeviceTotalMem", fake_device_total_mem),
    FAKE("cuDevicePrimaryCtxRetain", fake_primary_ctx_retain),
    FAKE("cuDevicePrimaryCtxRelease", fake_primary_ctx_release),
    FAKE("cuCtxSetCurrent", fake_ctx_set_current),
    FAKE("cuModuleLoadData", fake_module_load_data),
    FAKE("cuModuleUnload", fake_module_unload),
    FAKE("cuModuleGetFunction", fake_module_get_function),
    FAKE("cuFuncSetAttribute", fake_func_set_attribute),
    FAKE("cuLaunchKernel", fake_launch_kernel),
    FAKE("cuStreamCreate", fake_stream_create),
    FAKE("cuStreamDestroy", fake_stream_destroy),
    FAKE("cuStreamQuery", fake_stream_query),
    FAKE("cuEventCreate", fake_event_create),
    FAKE("cuEventDestroy", fake_event_destroy),
    FAKE("cuEventRecord", fake_event_record),
    FAKE("cuEventQuery", fake_event_query),
    FAKE("cuEventElapsedTime", fake_event_elapsed_time),
    FAKE("cuMemAlloc", fake_mem_alloc),
    FAKE("cuMemFree", fake_mem_free),
    FAKE("cuMemAllocHost", fake_mem_alloc_host),
    FAKE("cuMemFreeHost", fake_mem_free_host),
    FAKE("cuMemcpyDtoHAsync", fake_memcpy_dtoh_async),
    FAKE("cuMemsetD32Async", fake_memset_d32_async),
    FAKE("cuMemGetInfo", fake_mem_get_info),
};
#undef FAKE

}  // namespace

extern "C" {

__attribute__((visibility("default"))) CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version,
                                                                    cuuint64_t flags,
                                                                    CUdriverProcAddressQueryResult* status) {
  *pfn = nullptr;
  if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  // The backend must ask with an explicit version and default flags.
  if (version < 12000 || flags != CU_GET_PROC_ADDRESS_DEFAULT) return CUDA_ERROR_INVALID_VALUE;
  if (mode() == "missing_symbol" && std::strcmp(symbol, "cuMemAlloc") == 0) return CUDA_ERROR_NOT_FOUND;
  for (const Entry& entry : k_entries) {
    if (std::strcmp(entry.name, symbol) == 0) {
      *pfn = entry.function;
      if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

// Test hooks (not part of the driver API).
// Device allocations made and not yet freed (cuMemAlloc minus cuMemFree).
__attribute__((visibility("default"))) int substrate_fake_cuda_live_allocations() {
  std::lock_guard lock(g_inject_mutex);
  return g_live_allocations;
}
__attribute__((visibility("default"))) int substrate_fake_cuda_launches() {
  std::lock_guard lock(g_mutex);
  return g_launches;
}
__attribute__((visibility("default"))) void substrate_fake_cuda_last_launch(char* name, std::size_t name_size,
                                                                            unsigned* dims, unsigned* smem,
                                                                            unsigned char* params) {
  std::lock_guard lock(g_mutex);
  std::snprintf(name, name_size, "%s", g_last.name.c_str());
  std::memcpy(dims, g_last.dims, sizeof g_last.dims);
  *smem = g_last.smem;
  std::memcpy(params, g_last.params, sizeof g_last.params);
}

}  // extern "C"
