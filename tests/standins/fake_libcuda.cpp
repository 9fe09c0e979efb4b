// TEST-ONLY STAND-IN for libcuda.so.1 (never installed). The CUDA backend loads it through its
// real dlopen path when $SUBSTRATE_CUDA_LIBRARY names it. It exports only cuGetProcAddress_v2, as
// the real driver does for versioned lookups, and emulates GPUs whose "device memory" is host
// memory and whose kernels do nothing. It reads no hardware and proves nothing about a GPU: it
// drives the backend's host side (loading, image choice, compute modes, memory, errors, identity,
// launch geometry, readback, hang timeout) through scenarios.
//
// The scenario is the file named by $SUBSTRATE_FAKE_CUDA_SCENARIO, re-read whenever its size or
// modification time changes, so a test changes it under a running daemon (each worker is a
// process of its own that inherits the variable). Without it: one healthy device. The format is
// documented in docs/testing.md ("The libcuda stand-in"); in short, one directive a line, '#'
// starts a comment:
//   driver <version>            cuDriverGetVersion, e.g. 12020 (default 13000)
//   init <CUresult>             what cuInit returns (e.g. 100, CUDA_ERROR_NO_DEVICE)
//   fatbin <ok|CUresult>        what cuModuleLoadData answers for a fatbin (default: ok when the
//                               driver is 13.0 or newer and the fatbin has a cubin of the GPU's
//                               architecture, else 209 CUDA_ERROR_NO_BINARY_FOR_GPU)
//   ptx_isa <X.Y>               newest PTX ISA the driver JITs (default 9.0 for 13.0+, else 8.0);
//                               newer PTX gets 222 (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
//   missing <symbol>            cuGetProcAddress does not know the entry point
//   hang                        events and streams never complete
//   fail <entry> <CUresult> [from <n>]
//                               the entry point returns the code from its n-th call on (default
//                               1); a sticky code (214, 226, 700) then comes back from every
//                               injectable call, as a poisoned context does
//   device <i> <key> <value...> one GPU (indices from 0, in the driver's FASTEST_FIRST order):
//       name <text...>, uuid <8-4-4-4-12>, pci <00000000:3B:00.0>, cc <major.minor>,
//       total <bytes>, free <bytes>, compute_mode <default|exclusive_process|prohibited>,
//       processes <n> (compute processes of other programs on it),
//       mig <mig-uuid> <gpu instance id> <profile> <bytes> (one line per MIG instance: the GPU is
//       MIG-enabled and CUDA sees instances, never the GPU itself)
// CUDA_VISIBLE_DEVICES (indices, GPU-<uuid>, MIG-<uuid>) and CUDA_DEVICE_ORDER=PCI_BUS_ID are
// honoured at cuInit as the driver does. Without CUDA_VISIBLE_DEVICES a process sees one MIG
// instance only (the first), as the driver documents.
//
// Accounting: $SUBSTRATE_FAKE_CUDA_LOG, when set, names a file that gets one line per context or
// allocation event ("<pid> ctx?" for each cuDevicePrimaryCtxRetain call, granted or not, "<pid> ctx+",
// "<pid> ctx-", "<pid> alloc+ <bytes>", "<pid> alloc-"), appended
// atomically by every process, so a test proves what workers held. In-process hooks (not driver
// API): substrate_fake_cuda_live_allocations(), substrate_fake_cuda_live_contexts(),
// substrate_fake_cuda_contexts_created(), substrate_fake_cuda_launches(),
// substrate_fake_cuda_last_launch(...).
#include <cuda.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/launch.hpp"

namespace {

namespace ck = substrate::cuda_kernels;

struct MigInstance {
  std::string uuid;  // without the "MIG-" prefix
  int gpu_instance = 0;
  std::string profile;
  std::size_t bytes = 0;
};

struct Gpu {
  std::string name = "Fake GPU 80GB";
  std::string uuid;
  std::string pci;
  int cc = 90;
  std::size_t total = std::size_t{80} << 30;
  std::size_t free = std::size_t{70} << 30;
  int compute_mode = CU_COMPUTEMODE_DEFAULT;
  int processes = 0;
  std::vector<MigInstance> mig;
};

struct Failure {
  std::string entry;
  int code = 0;
  int from = 1;
};

struct Scenario {
  int driver = 13000;
  int init = 0;
  std::string fatbin = "auto";
  int ptx_isa = -1;  // 10 * major + minor; -1: from the driver version
  std::set<std::string> missing;
  bool hang = false;
  std::vector<Failure> failures;
  std::vector<Gpu> gpus;
};

// A device as CUDA enumerates it: a whole GPU or one MIG instance of it.
struct Visible {
  std::size_t gpu = 0;
  int mig = -1;  // index into Gpu::mig, or -1
};

Gpu default_gpu(std::size_t index) {
  Gpu gpu;
  char uuid[40], pci[32];
  std::snprintf(uuid, sizeof uuid, "ab1200ff-0102-0304-0506-0708090a0b%02x",
                static_cast<unsigned>(0xcd + index) & 0xff);
  std::snprintf(pci, sizeof pci, "00000000:%02X:00.0", static_cast<unsigned>(0x3b + index) & 0xff);
  gpu.uuid = uuid;
  gpu.pci = pci;
  return gpu;
}

int parse_isa(const std::string& text) {
  const std::size_t dot = text.find('.');
  if (dot == std::string::npos) return 10 * std::atoi(text.c_str());
  return 10 * std::atoi(text.substr(0, dot).c_str()) + std::atoi(text.substr(dot + 1).c_str());
}

Scenario parse(std::istream& in) {
  Scenario s;
  for (std::string line; std::getline(in, line);) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string key;
    if (!(words >> key)) continue;
    if (key == "driver") {
      words >> s.driver;
    } else if (key == "init") {
      words >> s.init;
    } else if (key == "fatbin") {
      words >> s.fatbin;
    } else if (key == "ptx_isa") {
      std::string isa;
      words >> isa;
      s.ptx_isa = parse_isa(isa);
    } else if (key == "missing") {
      std::string symbol;
      words >> symbol;
      s.missing.insert(symbol);
    } else if (key == "hang") {
      s.hang = true;
    } else if (key == "fail") {
      Failure f;
      std::string from;
      words >> f.entry >> f.code >> from >> f.from;
      if (from != "from") f.from = 1;
      s.failures.push_back(f);
    } else if (key == "device") {
      std::size_t index = 0;
      std::string field;
      words >> index >> field;
      while (s.gpus.size() <= index) s.gpus.push_back(default_gpu(s.gpus.size()));
      Gpu& gpu = s.gpus[index];
      if (field == "name") {
        std::getline(words >> std::ws, gpu.name);
      } else if (field == "uuid") {
        words >> gpu.uuid;
      } else if (field == "pci") {
        words >> gpu.pci;
      } else if (field == "cc") {
        std::string cc;
        words >> cc;
        gpu.cc = parse_isa(cc);
      } else if (field == "total") {
        words >> gpu.total;
      } else if (field == "free") {
        words >> gpu.free;
      } else if (field == "compute_mode") {
        std::string mode;
        words >> mode;
        gpu.compute_mode = mode == "exclusive_process" ? CU_COMPUTEMODE_EXCLUSIVE_PROCESS
                           : mode == "prohibited"      ? CU_COMPUTEMODE_PROHIBITED
                                                       : CU_COMPUTEMODE_DEFAULT;
      } else if (field == "processes") {
        words >> gpu.processes;
      } else if (field == "mig") {
        MigInstance mig;
        words >> mig.uuid >> mig.gpu_instance >> mig.profile >> mig.bytes;
        if (mig.uuid.rfind("MIG-", 0) == 0) mig.uuid.erase(0, 4);
        gpu.mig.push_back(mig);
      }
    }
  }
  if (s.gpus.empty()) s.gpus.push_back(default_gpu(0));
  if (s.ptx_isa < 0) s.ptx_isa = s.driver >= 13000 ? 90 : 80;
  return s;
}

// All mutable state, behind one mutex (the backend calls from one thread at a time, but tests
// read the hooks from theirs).
// The stand-in's state is never destroyed: a process may still call into the library from its
// own static destructors (a test's device released at exit) after this library's would have run.
std::mutex g_mutex;
Scenario& g_scenario = *new Scenario;
std::string& g_scenario_stamp = *new std::string("unread");
std::string& g_enumeration_key = *new std::string;            // scenario and environment the enumeration was made from
std::vector<Visible>& g_visible = *new std::vector<Visible>;  // fixed at cuInit
std::map<std::string, int>& g_calls = *new std::map<std::string, int>;
CUresult g_sticky = CUDA_SUCCESS;
int g_live_allocations = 0, g_live_contexts = 0, g_contexts_created = 0;
std::map<CUdeviceptr, std::pair<std::size_t, std::size_t>>& g_allocations =
    *new std::map<CUdeviceptr, std::pair<std::size_t, std::size_t>>;  // ptr -> (visible index, bytes)
std::vector<std::size_t>& g_used = *new std::vector<std::size_t>;     // bytes per visible device
std::vector<int>& g_retains = *new std::vector<int>;                  // primary-context refcount
std::size_t g_current = 0;                                            // visible index of the current context

// Re-reads the scenario when the file changed (size or mtime); resets the call counts and the
// sticky error so a new scenario starts from its first call. Caller holds g_mutex.
void refresh_locked() {
  const char* path = std::getenv("SUBSTRATE_FAKE_CUDA_SCENARIO");
  std::string stamp = "none";
  struct stat st {};
  if (path != nullptr && *path != '\0' && ::stat(path, &st) == 0) {
    stamp = std::string(path) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
            std::to_string(st.st_mtim.tv_nsec);
  }
  if (stamp == g_scenario_stamp) return;
  g_scenario_stamp = stamp;
  if (stamp == "none") {
    std::istringstream empty;
    g_scenario = parse(empty);
  } else {
    std::ifstream in(path);
    g_scenario = parse(in);
  }
  g_calls.clear();
  g_sticky = CUDA_SUCCESS;
}

void log_event(const std::string& what) {
  const char* path = std::getenv("SUBSTRATE_FAKE_CUDA_LOG");
  if (path == nullptr || *path == '\0') return;
  const std::string line = std::to_string(::getpid()) + " " + what + "\n";
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!::write(fd, line.data(), line.size());  // one write: appended whole, even across processes
  ::close(fd);
}

bool sticky_code(int code) { return code == 214 || code == 226 || code == 700; }

// What the scenario makes `call` return now (CUDA_SUCCESS: behave normally). Caller holds g_mutex.
CUresult injected_locked(const char* call) {
  refresh_locked();
  if (g_sticky != CUDA_SUCCESS) return g_sticky;
  const int n = ++g_calls[call];
  for (const Failure& f : g_scenario.failures) {
    if (f.entry != call || n < f.from) continue;
    if (sticky_code(f.code)) g_sticky = static_cast<CUresult>(f.code);
    return static_cast<CUresult>(f.code);
  }
  return CUDA_SUCCESS;
}
#define FAKE_INJECT(call)                                                      \
  do {                                                                         \
    if (const CUresult r = injected_locked(call); r != CUDA_SUCCESS) return r; \
  } while (false)

// The enumeration is fixed while contexts or allocations live (see fake_init); a scenario that
// shrank meanwhile falls back to its first GPU rather than reading past the list.
const Gpu& gpu_of(std::size_t visible) {
  const std::size_t g = g_visible[visible].gpu;
  return g_scenario.gpus[g < g_scenario.gpus.size() ? g : 0];
}
const MigInstance* mig_of(std::size_t visible) {
  const Visible& v = g_visible[visible];
  const Gpu& gpu = gpu_of(visible);
  return v.mig >= 0 && static_cast<std::size_t>(v.mig) < gpu.mig.size() ? &gpu.mig[static_cast<std::size_t>(v.mig)]
                                                                        : nullptr;
}
bool valid_device(CUdevice device) { return device >= 0 && static_cast<std::size_t>(device) < g_visible.size(); }

// The devices a process sees: CUDA_VISIBLE_DEVICES picks and orders them; without it every
// non-MIG GPU and the first MIG instance found; CUDA_DEVICE_ORDER=PCI_BUS_ID sorts the default
// list by bus id.
std::vector<Visible> enumerate() {
  const Scenario& s = g_scenario;
  std::vector<Visible> all;
  bool mig_seen = false;
  for (std::size_t g = 0; g < s.gpus.size(); ++g) {
    if (s.gpus[g].mig.empty()) {
      all.push_back({g, -1});
    } else if (!mig_seen) {
      all.push_back({g, 0});
      mig_seen = true;
    }
  }
  const char* order = std::getenv("CUDA_DEVICE_ORDER");
  if (order != nullptr && std::string(order) == "PCI_BUS_ID") {
    std::stable_sort(all.begin(), all.end(),
                     [&](const Visible& a, const Visible& b) { return s.gpus[a.gpu].pci < s.gpus[b.gpu].pci; });
  }
  const char* filter = std::getenv("CUDA_VISIBLE_DEVICES");
  if (filter == nullptr) return all;
  std::vector<Visible> picked;
  std::stringstream items(filter);
  for (std::string item; std::getline(items, item, ',');) {
    bool found = false;
    if (item.rfind("MIG-", 0) == 0) {
      for (std::size_t g = 0; g < s.gpus.size() && !found; ++g) {
        for (std::size_t m = 0; m < s.gpus[g].mig.size(); ++m) {
          if (s.gpus[g].mig[m].uuid == item.substr(4)) {
            picked.push_back({g, static_cast<int>(m)});
            found = true;
            break;
          }
        }
      }
    } else if (item.rfind("GPU-", 0) == 0) {
      for (std::size_t g = 0; g < s.gpus.size() && !found; ++g) {
        if (s.gpus[g].uuid == item.substr(4)) {
          picked.push_back({g, s.gpus[g].mig.empty() ? -1 : 0});
          found = true;
        }
      }
    } else if (!item.empty() && item.find_first_not_of("0123456789") == std::string::npos) {
      const auto index = static_cast<std::size_t>(std::atoi(item.c_str()));
      if (index < all.size()) {
        picked.push_back(all[index]);
        found = true;
      }
    }
    if (!found) break;  // the driver stops at the first entry it cannot resolve
  }
  return picked;
}

struct LaunchRecord {
  std::string name;
  unsigned dims[6] = {};
  unsigned smem = 0;
  unsigned char params[128] = {};
};

const unsigned char* g_image = nullptr;
std::size_t g_image_size = 0;
std::map<CUfunction, std::string>& g_functions = *new std::map<CUfunction, std::string>;
std::vector<std::string>& g_names = *new std::vector<std::string>;
LaunchRecord& g_last = *new LaunchRecord;
int g_launches = 0;
int g_context_tokens[64], g_module_token, g_stream_token, g_event_tokens[64];
int g_next_event = 0;

CUresult CUDAAPI fake_init(unsigned int) {
  std::lock_guard lock(g_mutex);
  refresh_locked();
  if (g_scenario.init != 0) return static_cast<CUresult>(g_scenario.init);
  // The driver enumerates once per process. Here again whenever the scenario or the variables
  // the driver reads at cuInit changed, so one test process can try scenarios one after the
  // other; what an earlier enumeration still holds (a hung device's context) stays counted live.
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  const char* order = std::getenv("CUDA_DEVICE_ORDER");
  const std::string key = g_scenario_stamp + "|" + (visible ? visible : "(unset)") + "|" + (order ? order : "");
  if (key != g_enumeration_key) {
    g_enumeration_key = key;
    g_visible = enumerate();
    g_used.assign(g_visible.size(), 0);
    g_retains.assign(g_visible.size(), 0);
    g_current = 0;
  }
  return g_visible.empty() ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS;
}
CUresult CUDAAPI fake_driver_get_version(int* version) {
  std::lock_guard lock(g_mutex);
  refresh_locked();
  *version = g_scenario.driver;
  return CUDA_SUCCESS;
}

struct Code {
  CUresult code;
  const char* name;
  const char* text;
};
const Code k_codes[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {CUDA_ERROR_ECC_UNCORRECTABLE, "CUDA_ERROR_ECC_UNCORRECTABLE", "uncorrectable ECC error encountered"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {CUDA_ERROR_CONTAINED, "CUDA_ERROR_CONTAINED", "a contained error was encountered on the device"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE",
     "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_MPS_CONNECTION_FAILED, "CUDA_ERROR_MPS_CONNECTION_FAILED",
     "MPS client failed to connect to the MPS control daemon or the MPS server"},
};
CUresult CUDAAPI fake_get_error_name(CUresult error, const char** out) {
  for (const Code& c : k_codes) {
    if (c.code == error) {
      *out = c.name;
      return CUDA_SUCCESS;
    }
  }
  *out = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}
CUresult CUDAAPI fake_get_error_string(CUresult error, const char** out) {
  for (const Code& c : k_codes) {
    if (c.code == error) {
      *out = c.text;
      return CUDA_SUCCESS;
    }
  }
  *out = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}
CUresult CUDAAPI fake_device_get_count(int* count) {
  std::lock_guard lock(g_mutex);
  *count = static_cast<int>(g_visible.size());
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get(CUdevice* device, int ordinal) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_name(char* name, int len, CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  const auto d = static_cast<std::size_t>(device);
  std::string text = gpu_of(d).name;
  if (const MigInstance* mig = mig_of(d)) text += " MIG " + mig->profile;
  std::snprintf(name, static_cast<std::size_t>(len), "%s", text.c_str());
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_uuid(CUuuid* uuid, CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  const auto d = static_cast<std::size_t>(device);
  const MigInstance* mig = mig_of(d);
  std::string hex = mig ? mig->uuid : gpu_of(d).uuid;
  hex.erase(std::remove(hex.begin(), hex.end(), '-'), hex.end());
  for (std::size_t i = 0; i < 16; ++i) {
    uuid->bytes[i] = static_cast<char>(std::strtoul(hex.substr(2 * i, 2).c_str(), nullptr, 16));
  }
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_pci_bus_id(char* bus, int len, CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  std::snprintf(bus, static_cast<std::size_t>(len), "%s", gpu_of(static_cast<std::size_t>(device)).pci.c_str());
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_device_get_attribute(int* value, CUdevice_attribute attribute, CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  const Gpu& gpu = gpu_of(static_cast<std::size_t>(device));
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      *value = gpu.cc / 10;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      *value = gpu.cc % 10;
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      *value = mig_of(static_cast<std::size_t>(device)) ? 16 : 132;
      break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
      *value = 0;
      break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
      *value = 232448;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE:
      *value = gpu.compute_mode;
      break;
    default:
      return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
std::size_t total_of(std::size_t d) {
  const MigInstance* mig = mig_of(d);
  return mig ? mig->bytes : gpu_of(d).total;
}
std::size_t free_of(std::size_t d) {
  const MigInstance* mig = mig_of(d);
  const std::size_t base = mig ? mig->bytes : gpu_of(d).free;
  return base > g_used[d] ? base - g_used[d] : 0;
}
CUresult CUDAAPI fake_device_total_mem(std::size_t* bytes, CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = total_of(static_cast<std::size_t>(device));
  return CUDA_SUCCESS;
}
// The driver's rules for a new context: none under PROHIBITED, none under EXCLUSIVE_PROCESS
// while another process has one (CUDA_ERROR_DEVICE_UNAVAILABLE, cuda.h).
CUresult CUDAAPI fake_primary_ctx_retain(CUcontext* context, CUdevice device) {
  std::lock_guard lock(g_mutex);
  log_event("ctx?");  // every attempt, granted or not
  FAKE_INJECT("cuDevicePrimaryCtxRetain");
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  const auto d = static_cast<std::size_t>(device);
  const Gpu& gpu = gpu_of(d);
  if (gpu.compute_mode == CU_COMPUTEMODE_PROHIBITED) return CUDA_ERROR_DEVICE_UNAVAILABLE;
  if (gpu.compute_mode == CU_COMPUTEMODE_EXCLUSIVE_PROCESS && gpu.processes > 0) return CUDA_ERROR_DEVICE_UNAVAILABLE;
  if (g_retains[d]++ == 0) {
    ++g_live_contexts;
    ++g_contexts_created;
    log_event("ctx+");
  }
  *context = reinterpret_cast<CUcontext>(&g_context_tokens[d % 64]);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_primary_ctx_release(CUdevice device) {
  std::lock_guard lock(g_mutex);
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  const auto d = static_cast<std::size_t>(device);
  if (g_retains[d] == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (--g_retains[d] == 0) {
    --g_live_contexts;
    log_event("ctx-");
  }
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_ctx_set_current(CUcontext context) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuCtxSetCurrent");
  if (context != nullptr) g_current = static_cast<std::size_t>(reinterpret_cast<int*>(context) - g_context_tokens);
  return CUDA_SUCCESS;
}
// A fatbin is taken when the scenario says so or, by default, when the driver is 13.0+ (the
// CUDA 13 image format) and it holds a cubin for the device's architecture. PTX text is taken
// when its .version is at most the driver's ISA and its .target at most the device's.
CUresult load_image_locked(const unsigned char* bytes) {
  std::uint32_t magic;
  std::memcpy(&magic, bytes, 4);
  const Gpu& gpu = gpu_of(g_current);
  if (magic == 0xBA55ED50u) {
    std::uint16_t header;
    std::uint64_t payload;
    std::memcpy(&header, bytes + 6, 2);
    std::memcpy(&payload, bytes + 8, 8);
    const std::string& rule = g_scenario.fatbin;
    if (rule != "ok" && rule != "auto") return static_cast<CUresult>(std::atoi(rule.c_str()));
    if (rule == "auto") {
      if (g_scenario.driver < 13000) return CUDA_ERROR_NO_BINARY_FOR_GPU;
      // Entry headers: kind at +0 (2 = ELF), header size at +4, payload size at +8, arch at +28.
      bool cubin = false;
      for (std::size_t at = header; at + 32 <= header + payload;) {
        std::uint16_t kind;
        std::uint32_t entry_header, arch;
        std::uint64_t entry_payload;
        std::memcpy(&kind, bytes + at, 2);
        std::memcpy(&entry_header, bytes + at + 4, 4);
        std::memcpy(&entry_payload, bytes + at + 8, 8);
        std::memcpy(&arch, bytes + at + 28, 4);
        if (kind == 2 && static_cast<int>(arch) == gpu.cc) cubin = true;
        at += entry_header + entry_payload;
      }
      if (!cubin) return CUDA_ERROR_NO_BINARY_FOR_GPU;
    }
    g_image = bytes;
    g_image_size = header + payload;
    return CUDA_SUCCESS;
  }
  const std::string text(reinterpret_cast<const char*>(bytes));
  const std::size_t version = text.find("\n.version ");
  const std::size_t target = text.find("\n.target sm_");
  if (version == std::string::npos || target == std::string::npos) return CUDA_ERROR_INVALID_IMAGE;
  if (parse_isa(text.substr(version + 10, 8)) > g_scenario.ptx_isa) return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
  if (std::atoi(text.c_str() + target + 12) > gpu.cc) return CUDA_ERROR_NO_BINARY_FOR_GPU;
  g_image = bytes;
  g_image_size = text.size();
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_module_load_data(CUmodule* module, const void* image) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuModuleLoadData");
  const CUresult loaded = load_image_locked(static_cast<const unsigned char*>(image));
  if (loaded == CUDA_SUCCESS) *module = reinterpret_cast<CUmodule>(&g_module_token);
  return loaded;
}
CUresult CUDAAPI fake_module_unload(CUmodule) { return CUDA_SUCCESS; }
// A function exists when its NUL-terminated name occurs in a fatbin (the ELF symbol tables hold
// the extern "C" kernel names) or as ".entry name(" in PTX.
CUresult CUDAAPI fake_module_get_function(CUfunction* function, CUmodule, const char* name) {
  std::lock_guard lock(g_mutex);
  if (g_image == nullptr) return CUDA_ERROR_NOT_FOUND;
  const std::string ptx_entry = std::string(".entry ") + name + "(";
  if (memmem(g_image, g_image_size, name, std::strlen(name) + 1) == nullptr &&
      memmem(g_image, g_image_size, ptx_entry.data(), ptx_entry.size()) == nullptr) {
    return CUDA_ERROR_NOT_FOUND;
  }
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
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuLaunchKernel");
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
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuStreamCreate");
  *stream = reinterpret_cast<CUstream>(&g_stream_token);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_stream_destroy(CUstream) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_stream_query(CUstream) {
  std::lock_guard lock(g_mutex);
  refresh_locked();
  return g_scenario.hang ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_create(CUevent* event, unsigned int) {
  std::lock_guard lock(g_mutex);
  *event = reinterpret_cast<CUevent>(&g_event_tokens[g_next_event++ % 64]);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_destroy(CUevent) { return CUDA_SUCCESS; }
CUresult CUDAAPI fake_event_record(CUevent, CUstream) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuEventRecord");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_query(CUevent) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuEventQuery");
  return g_scenario.hang ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}
CUresult CUDAAPI fake_event_elapsed_time(float* ms, CUevent, CUevent) {
  *ms = 1.5f;
  return CUDA_SUCCESS;
}
// Allocations come off the current device's free memory (the scenario's `free`, less what this
// process holds): beyond it, CUDA_ERROR_OUT_OF_MEMORY, as on a GPU a workload has filled.
CUresult CUDAAPI fake_mem_alloc(CUdeviceptr* ptr, std::size_t bytes) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuMemAlloc");
  if (g_current >= g_visible.size() || bytes > free_of(g_current)) return CUDA_ERROR_OUT_OF_MEMORY;
  if (bytes > (std::size_t{1} << 31)) return CUDA_ERROR_OUT_OF_MEMORY;  // keep the host safe
  void* memory = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (memory == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  *ptr = reinterpret_cast<CUdeviceptr>(memory);
  g_allocations[*ptr] = {g_current, bytes};
  g_used[g_current] += bytes;
  ++g_live_allocations;
  log_event("alloc+ " + std::to_string(bytes));
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_free(CUdeviceptr ptr) {
  std::lock_guard lock(g_mutex);
  const auto found = g_allocations.find(ptr);
  if (found == g_allocations.end()) return CUDA_ERROR_INVALID_VALUE;
  // An allocation of an earlier enumeration (see fake_init) no longer counts against a device.
  const auto [device, bytes] = found->second;
  if (device < g_used.size() && g_used[device] >= bytes) g_used[device] -= bytes;
  g_allocations.erase(found);
  std::free(reinterpret_cast<void*>(ptr));
  --g_live_allocations;
  log_event("alloc-");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_alloc_host(void** ptr, std::size_t bytes) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuMemAllocHost");
  *ptr = std::malloc(bytes == 0 ? 1 : bytes);
  return *ptr ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
CUresult CUDAAPI fake_mem_free_host(void* ptr) {
  std::free(ptr);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_memcpy_dtoh_async(void* dst, CUdeviceptr src, std::size_t bytes, CUstream) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuMemcpyDtoHAsync");
  std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_memset_d32_async(CUdeviceptr dst, unsigned int value, std::size_t count, CUstream) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuMemsetD32Async");
  auto* words = reinterpret_cast<unsigned int*>(dst);
  for (std::size_t i = 0; i < count; ++i) words[i] = value;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI fake_mem_get_info(std::size_t* free, std::size_t* total) {
  std::lock_guard lock(g_mutex);
  FAKE_INJECT("cuMemGetInfo");
  if (g_current >= g_visible.size()) return CUDA_ERROR_INVALID_CONTEXT;
  *free = free_of(g_current);
  *total = total_of(g_current);
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
  {
    std::lock_guard lock(g_mutex);
    refresh_locked();
    if (g_scenario.missing.count(symbol) != 0) return CUDA_ERROR_NOT_FOUND;
  }
  for (const Entry& entry : k_entries) {
    if (std::strcmp(entry.name, symbol) == 0) {
      *pfn = entry.function;
      if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

// Test hooks (not part of the driver API), for tests in the process that loaded the stand-in.
// Device allocations made and not yet freed (cuMemAlloc minus cuMemFree).
__attribute__((visibility("default"))) int substrate_fake_cuda_live_allocations() {
  std::lock_guard lock(g_mutex);
  return g_live_allocations;
}
// Primary contexts retained and not yet released, and contexts ever created in this process.
__attribute__((visibility("default"))) int substrate_fake_cuda_live_contexts() {
  std::lock_guard lock(g_mutex);
  return g_live_contexts;
}
__attribute__((visibility("default"))) int substrate_fake_cuda_contexts_created() {
  std::lock_guard lock(g_mutex);
  return g_contexts_created;
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
