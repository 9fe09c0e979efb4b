#pragma once
// The wall between probes and vendors: a backend (Vulkan, CUDA) implements ComputeDevice; probes
// and the daemon see only this interface. Nothing here includes a vendor header.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "kernels/spec.hpp"

namespace substrate {

struct DeviceInfo {
  std::string id;                   // stable within a host: "<backend><index>", e.g. "vulkan0"
  std::string backend;              // "vulkan", "cuda"
  std::string name;                 // "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string vendor;               // "nvidia", "amd", "intel", "mesa", or "0x<id>"
  std::string driver;               // driver name and version as the API reports them
  std::string device_type;          // "discrete", "integrated", "virtual", "cpu", "other"
  std::string uuid;                 // canonical 8-4-4-4-12 lower-case hex, empty when unknown
  std::string pci_bus_id;           // "0000:65:00.0", empty when unknown
  std::string api_version;          // e.g. Vulkan "1.3.230", CUDA "13.0"
  std::uint64_t memory_bytes = 0;   // device-local memory
  std::uint32_t compute_units = 0;  // SMs/CUs where the API reports them, 0 otherwise
  std::string kernel_build;         // hash of the backend's embedded kernel binaries
  // Which of the embedded images the driver loaded, once the device was opened: "sass sm_90"
  // (a cubin for the GPU's architecture) or "ptx-jit 8.0" (PTX at that ISA, compiled by the
  // driver); empty until then and for backends with one image (Vulkan's SPIR-V).
  std::string kernel_image;
  // A MIG instance (docs/cuda.md, "MIG"): its parent GPU's UUID (canonical), its GPU instance id
  // and its profile ("1g.10gb"); empty / -1 for a whole device. `uuid` is then the instance's.
  std::string mig_parent_uuid;
  int mig_gpu_instance = -1;
  std::string mig_profile;
  bool is_mig() const { return mig_gpu_instance >= 0; }
  // The board, where NVML gives it (empty otherwise): for joins with inventory and RMAs.
  std::string vbios_version;      // nvmlDeviceGetVbiosVersion, e.g. "96.00.74.00.01"
  std::string serial;             // nvmlDeviceGetSerial: the board's serial number
  std::string board_part_number;  // nvmlDeviceGetBoardPartNumber
  bool is_cpu() const { return device_type == "cpu"; }
};

// What a backend writes over a GEMM or attention output buffer before the kernel runs: an fp32
// NaN, outside every bound and unequal to every golden, so an element the kernel leaves unwritten
// (a dropped or truncated dispatch) fails the check instead of showing what the buffer held, such
// as the previous repeated pass's correct output in memory the allocator handed back.
inline constexpr std::uint32_t k_unwritten_output_word = 0xFFFFFFFFu;

// Output of one kernel run: the raw output words as the device wrote them, and device time from
// the device's own timer (timestamp queries, CUDA events).
struct KernelRun {
  std::string kernel;                      // which kernel ran, e.g. "vulkan.gemm.tiled16"
  std::vector<std::uint32_t> output_bits;  // f32 words, row-major
  double device_seconds = 0.0;             // the checked kernel alone
  double generate_seconds = 0.0;           // on-device input generation
  // Unit roundoff of the kernel's fp32 arithmetic, for the random-mode bounds (GEMM and
  // attention): 2^-24 for round-to-nearest; a backend whose kernel rounds more coarsely says so
  // (CUDA's tensor cores: 2^-22, docs/cuda.md; Vulkan without RoundingModeRTE: 2^-23).
  double accumulation_unit_roundoff = 1.0 / 16777216.0;
};

struct GemmLaunch {
  GemmShape shape;
  Dtype dtype = Dtype::f32;
  Mode mode = Mode::exact;
  std::uint64_t seed = 0;
  std::uint32_t exact_radius = 0;  // exact mode: inputs in [-R, R]
  Injection inject;
};

struct AttentionLaunch {
  AttentionShape shape;
  Dtype dtype = Dtype::f32;
  std::uint64_t seed = 0;
  Injection inject;
};

enum class MemoryPattern : std::uint32_t {
  walking_ones = 0,
  walking_zeros = 1,
  own_address = 2,
  moving_inversions = 3,
  random = 4,
};
const char* to_string(MemoryPattern pattern);

struct MemoryLaunch {
  std::uint64_t bytes = 0;  // region to test, a multiple of 4
  std::uint64_t seed = 0;
  std::vector<MemoryPattern> patterns;
  std::uint32_t max_reported = 16;  // bad words reported in detail
  Injection inject;                 // element = word offset in the region
};

struct BadWord {
  std::uint64_t offset = 0;  // byte offset in the tested region
  std::uint32_t expected = 0, actual = 0;
  std::uint32_t reread = 0;  // value on a second read: == actual means a stored flip
  MemoryPattern pattern = MemoryPattern::walking_ones;
};

struct MemoryRun {
  std::uint64_t bytes_tested = 0;
  std::uint64_t words_checked = 0;
  std::uint64_t bad_words = 0;
  std::uint64_t bytes_moved = 0;  // read plus written by the kernels
  std::uint32_t bit_histogram[32] = {};
  std::vector<BadWord> first_bad;
  double device_seconds = 0.0;
  std::string kernel;
};

// The tiny-transformer canary (kernels/golden/canary_golden.hpp): every checkpoint layer's
// output words, in checkpoint order. inject.layer picks the checkpoint whose output is corrupted.
struct CanaryLaunch {
  CanaryShape shape;
  std::uint64_t seed = 0;
  Injection inject;
};

struct CanaryRun {
  std::string kernel;
  std::vector<std::vector<std::uint32_t>> layers;  // f32 words, row-major tokens x features
  double device_seconds = 0.0;
};

// Retention: a block written once and re-read by later runs; `age_seconds` since the write.
struct RetentionRun {
  std::uint64_t bytes = 0;
  std::uint64_t bad_words = 0;
  double age_seconds = 0.0;
  std::vector<BadWord> first_bad;
};

class ComputeDevice {
 public:
  virtual ~ComputeDevice() = default;
  virtual const DeviceInfo& info() const = 0;
  // Free device memory as the driver reports it (budget), or total device-local memory; 0 when
  // the driver cannot say (the memory probe then skips rather than test a token region).
  virtual std::uint64_t free_memory_bytes() const = 0;
  // Non-empty after a sticky error: the driver said the process's context is unusable and the
  // process must be terminated and relaunched (cuda.h: CUDA_ERROR_ILLEGAL_ADDRESS, ECC_UNCORRECTABLE,
  // CONTAINED, ...). Every later call fails with that error without touching the driver; a worker
  // seeing this reports what it has and exits, so the next round gets a fresh process.
  virtual std::string sticky_error() const { return {}; }
  // Makes the device ready for runs: a backend that opens its context lazily (CUDA, when a
  // workload held the memory or the device at discovery) opens it here. Errors are those of the
  // run calls (ErrorKind::out_of_memory or busy: skip the run). run_probe calls it first.
  virtual Status open() { return ok_status(); }
  // Whether open() may take a device whose compute mode lets one process have it
  // (CUDA's EXCLUSIVE_PROCESS) when no other process is on it. Off by default: even a brief
  // context there can make a workload's start fail (docs/cuda.md, "Compute modes").
  virtual void allow_exclusive_compute(bool allowed) { (void)allowed; }
  // How many compute processes of other programs NVML lists on the device, read by the worker
  // before open() when exclusive devices may be probed; -1 (the default) when unknown. A device in
  // EXCLUSIVE_PROCESS mode with one is not opened at all (busy): not even a context is tried.
  virtual void set_other_compute_processes(int count) { (void)count; }
  // Raw generator words for (seed, stream, first..first+count): proves generator parity.
  virtual Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream,
                                                            std::uint64_t first, std::uint32_t count) = 0;
  virtual Expected<KernelRun> run_gemm(const GemmLaunch& launch) = 0;
  virtual Expected<KernelRun> run_attention(const AttentionLaunch& launch) = 0;
  // Whether the device can run the launch within its limits (probes/backends/launch_limits.hpp):
  // invalid_argument naming the limit when not. Probes ask before computing the golden, so a
  // refused shape costs nothing; run_gemm/run_attention check again. A backend that checks
  // nothing up front says ok.
  virtual Status check_gemm(const GemmLaunch& launch) const {
    (void)launch;
    return ok_status();
  }
  virtual Status check_attention(const AttentionLaunch& launch) const {
    (void)launch;
    return ok_status();
  }
  virtual Expected<MemoryRun> run_memory(const MemoryLaunch& launch) = 0;
  // Not pure: backends without the canary kernels (CUDA for now) report it unavailable. run_probe
  // never gets here for them (the canary's descriptor lists its backends: the run is skipped).
  virtual Expected<CanaryRun> run_canary(const CanaryLaunch& launch) {
    (void)launch;
    return Error{ErrorKind::unavailable,
                 "the canary probe is not implemented on the " + info().backend + " backend yet"};
  }
  // Writes the retention block on the first call (or when its size changes) and verifies it on
  // later calls.
  virtual Expected<RetentionRun> check_retention(std::uint64_t bytes, std::uint64_t seed) = 0;
  // Kernels still running after `timeout` leave the device unusable: every later call fails with
  // ErrorKind::timeout ("hung").
  virtual void set_timeout_seconds(double seconds) = 0;
};

using DevicePtr = std::unique_ptr<ComputeDevice>;

struct Discovery {
  std::vector<DevicePtr> devices;
  std::vector<std::string> backend_notes;  // e.g. "cuda: libcuda.so.1 not found (no NVIDIA driver)"
};

// The default order of backends for a GPU that several backends see (backend_preference).
inline const std::vector<std::string> k_default_backend_preference = {"cuda", "vulkan"};

// Every device of every backend compiled in, each physical GPU once: where two backends see one
// GPU (same UUID or PCI bus id; NVIDIA's Vulkan driver and libcuda), the device of the backend
// first in `preference` is kept and the other becomes a note. Never fails: absent backends leave
// a note.
Discovery discover_devices(const std::vector<std::string>& preference = k_default_backend_preference);

// For listings (`substrated devices`, the daemon's discovery worker): opens each device once, so
// its DeviceInfo names the kernel image the driver took. A device whose kernels no image can
// load on this driver (ErrorKind::unavailable) is dropped with a note, as discovery did before
// contexts were opened lazily; one that is busy or out of memory (a workload holds it, or its
// compute mode admits no probe) stays listed with a note. Opening creates a context only where
// the compute mode allows it, and it ends with the listing process.
void open_for_listing(Discovery& found);

}  // namespace substrate
