// GPU-only group: needs an NVIDIA GPU and driver. Hidden by default ([.gpu]); run with
// `substrate_tests "[gpu]"` or tests/gpu/run.sh. Each test FAILS (does not skip) when no CUDA
// device is present, because the group is only ever run on purpose on a GPU host.
//
// Checks every CUDA probe in exact and random mode against the project's CPU goldens and check
// path, on both GEMM paths (CUDA cores and tensor cores), fault injection, memory patterns with
// stored and transient flips, retention, the registered probes end to end, and Vulkan-vs-CUDA
// agreement in exact mode.
#include <catch2/catch.hpp>

#if SUBSTRATE_WITH_CUDA

#include <dlfcn.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

#include "kernels/cuda/launch.hpp"
#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "kernels/golden/golden.hpp"
#include "probes/backends/cuda/cuda_backend.hpp"
#include "probes/backends/cuda/driver_api.hpp"
#include "probes/backends/cuda/fatbin.hpp"
#include "probes/core/check.hpp"
#include "probes/core/registry.hpp"

using namespace substrate;
namespace ck = substrate::cuda_kernels;

namespace {

cuda::CudaDevice& gpu() {
  static std::vector<DevicePtr> devices;
  static std::vector<std::string> notes;
  static cuda::CudaDevice* device = [] {
    cuda::discover(devices, notes);
    if (devices.empty()) return static_cast<cuda::CudaDevice*>(nullptr);
    // Discovery opens nothing: the context and kernels load here (as run_probe does first).
    if (const Status opened = devices.front()->open(); !opened.ok()) {
      notes.push_back("cuda0 could not be opened: " + opened.error().message);
      return static_cast<cuda::CudaDevice*>(nullptr);
    }
    return dynamic_cast<cuda::CudaDevice*>(devices.front().get());
  }();
  if (device == nullptr) {
    std::string why;
    for (const auto& note : notes) why += note + "\n";
    FAIL("no CUDA device: " << why);
  }
  return *device;
}

GoldenCache& goldens() {
  static GoldenCache cache;
  return cache;
}

struct PathCase {
  cuda::GemmPath path;
  const char* name;
};

std::vector<PathCase> paths_for(Dtype dtype) {
  std::vector<PathCase> paths{{cuda::GemmPath::cuda_cores, "cuda cores"}};
  const std::uint32_t code = static_cast<std::uint32_t>(dtype);
  if (ck::tensor_cores_support(code, gpu().compute_capability() / 10)) {
    paths.push_back({cuda::GemmPath::tensor_cores, "tensor cores"});
  }
  return paths;
}

KernelRun gemm(Dtype dtype, Mode mode, GemmShape shape, std::uint64_t seed, cuda::GemmPath path,
               Injection inject = {}) {
  gpu().set_gemm_path(path);
  GemmLaunch launch;
  launch.shape = shape;
  launch.dtype = dtype;
  launch.mode = mode;
  launch.seed = seed;
  launch.exact_radius = mode == Mode::exact ? gen::exact_radius(shape.k) : 0;
  launch.inject = inject;
  auto run = gpu().run_gemm(launch);
  gpu().set_gemm_path(cuda::GemmPath::automatic);
  if (!run) FAIL(run.error().message);
  return std::move(*run);
}

// The random-mode bound for the kernel that ran: the golden's gamma_K(2^-24)|A||B| scaled to the
// kernel's unit roundoff (4x for tensor cores, docs/cuda.md).
std::vector<double> bound_for(const std::vector<double>& bound, double u, std::uint32_t k) {
  const double scale = golden::gamma(k, u) / golden::gamma(k, golden::k_unit_roundoff_f32);
  std::vector<double> out(bound);
  for (double& b : out) b *= scale;
  return out;
}

}  // namespace

TEST_CASE("cuda: device identity is complete", "[.gpu]") {
  const DeviceInfo& info = gpu().info();
  INFO(info.name << " " << info.uuid << " " << info.pci_bus_id << " " << info.driver);
  CHECK(info.uuid.size() == 36);
  CHECK(info.pci_bus_id.size() == 12);
  CHECK(info.compute_units > 0);
  CHECK(info.memory_bytes > 0);
  CHECK(gpu().free_memory_bytes() > 0);
}

TEST_CASE("cuda: generator parity on the GPU", "[.gpu]") {
  for (std::uint32_t stream : {1u, 2u, 5u, 6u, 7u, 100u}) {
    for (std::uint64_t first : {0ull, 0xFFFFF000ull, 1ull << 40}) {
      auto raw = gpu().generate_raw(0xC0FFEE, stream, first, 1u << 16);
      REQUIRE(raw.ok());
      for (std::uint32_t i = 0; i < raw->size(); ++i) {
        REQUIRE((*raw)[i] == gen::random_bits(0xC0FFEE, stream, first + i));
      }
    }
  }
}

TEST_CASE("cuda: GEMM exact mode is bit-exact on every path and dtype and shape", "[.gpu]") {
  const GemmShape shapes[] = {{1, 1, 1},      {17, 33, 65},    {64, 64, 64},
                              {100, 70, 300}, {256, 256, 256}, {1024, 1024, 1024}};
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (const PathCase& path : paths_for(dtype)) {
      for (const GemmShape& shape : shapes) {
        INFO(to_string(dtype) << " " << path.name << " " << shape.m << "x" << shape.n << "x" << shape.k);
        const std::uint32_t radius = gen::exact_radius(shape.k);
        const KernelRun run = gemm(dtype, Mode::exact, shape, 11, path.path);
        const auto reference = golden::gemm(shape, dtype, Mode::exact, 11, radius);
        const CheckOutcome outcome = check_exact(run.output_bits, reference.value, shape.n);
        CHECK(outcome.pass);
        CHECK(outcome.mismatched == 0);
        // Reproducible: a second run gives the same bits.
        CHECK(fingerprint(gemm(dtype, Mode::exact, shape, 11, path.path).output_bits) == fingerprint(run.output_bits));
      }
    }
  }
}

TEST_CASE("cuda: GEMM random mode stays within the bound reproducibly", "[.gpu]") {
  const GemmShape shapes[] = {{65, 63, 129}, {512, 512, 512}, {1024, 1024, 2048}};
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (const PathCase& path : paths_for(dtype)) {
      for (const GemmShape& shape : shapes) {
        for (std::uint64_t seed : {1ull, 2ull, 3ull}) {
          INFO(to_string(dtype) << " " << path.name << " " << shape.m << "x" << shape.n << "x" << shape.k << " seed "
                                << seed);
          const KernelRun run = gemm(dtype, Mode::random, shape, seed, path.path);
          const auto reference = golden::gemm(shape, dtype, Mode::random, seed, 0);
          const auto bound = bound_for(reference.bound, run.accumulation_unit_roundoff, shape.k);
          const CheckOutcome outcome = check_bounded(run.output_bits, reference.value, bound, shape.n);
          CHECK(outcome.pass);
          CHECK(outcome.budget_used < 0.25);
          std::printf("gemm %s %s %ux%ux%u seed %llu: budget used %.3g (kernel %s)\n", to_string(dtype), path.name,
                      shape.m, shape.n, shape.k, static_cast<unsigned long long>(seed), outcome.budget_used,
                      run.kernel.c_str());
          CHECK(fingerprint(gemm(dtype, Mode::random, shape, seed, path.path).output_bits) ==
                fingerprint(run.output_bits));
        }
      }
    }
  }
}

TEST_CASE("cuda: GEMM injection of every fp32 bit is detected at the right element", "[.gpu]") {
  const GemmShape shape{96, 80, 64};
  const std::uint32_t radius = gen::exact_radius(shape.k);
  const auto reference = golden::gemm(shape, Dtype::f16, Mode::exact, 5, radius);
  for (const PathCase& path : paths_for(Dtype::f16)) {
    for (std::uint32_t bit = 0; bit < 32; ++bit) {
      INFO(path.name << " bit " << bit);
      const std::uint64_t element = 37ull * shape.n + 11;
      const KernelRun run =
          gemm(Dtype::f16, Mode::exact, shape, 5, path.path, Injection{true, element, 1u << bit, false});
      const CheckOutcome outcome = check_exact(run.output_bits, reference.value, shape.n);
      REQUIRE_FALSE(outcome.pass);
      CHECK(outcome.mismatched == 1);
      REQUIRE(!outcome.first_mismatches.empty());
      CHECK(outcome.first_mismatches[0].index == element);
      CHECK(outcome.first_mismatches[0].xor_bits == (1u << bit));
    }
  }
  // Random mode: exponent and top mantissa flips break the bound.
  const auto random_ref = golden::gemm(shape, Dtype::f32, Mode::random, 5, 0);
  for (std::uint32_t bit : {22u, 23u, 27u, 30u, 31u}) {
    const KernelRun run =
        gemm(Dtype::f32, Mode::random, shape, 5, cuda::GemmPath::cuda_cores, Injection{true, 100, 1u << bit, false});
    const CheckOutcome outcome = check_bounded(run.output_bits, random_ref.value, random_ref.bound, shape.n);
    INFO("bit " << bit);
    CHECK_FALSE(outcome.pass);
  }
}

TEST_CASE("cuda: attention stays within the bound and catches injected flips", "[.gpu]") {
  const AttentionShape shapes[] = {{128, 4, 64, true}, {512, 8, 128, false}, {1000, 2, 64, true}, {4096, 2, 128, true}};
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (const AttentionShape& shape : shapes) {
      INFO(to_string(dtype) << " L=" << shape.seq_len << " H=" << shape.heads << " D=" << shape.head_dim);
      AttentionLaunch launch;
      launch.shape = shape;
      launch.dtype = dtype;
      launch.seed = 21;
      auto run = gpu().run_attention(launch);
      REQUIRE(run.ok());
      const auto reference = golden::attention(shape, dtype, 21);
      const CheckOutcome outcome = check_bounded(run->output_bits, reference.value, reference.bound, shape.head_dim);
      CHECK(outcome.pass);
      std::printf("attention %s L=%u H=%u D=%u: budget used %.3g\n", to_string(dtype), shape.seq_len, shape.heads,
                  shape.head_dim, outcome.budget_used);
      auto again = gpu().run_attention(launch);
      REQUIRE(again.ok());
      CHECK(fingerprint(again->output_bits) == fingerprint(run->output_bits));
      for (std::uint32_t bit : {22u, 23u, 30u}) {
        launch.inject = Injection{true, 3ull * shape.head_dim + 5, 1u << bit, false};
        auto bad = gpu().run_attention(launch);
        REQUIRE(bad.ok());
        const CheckOutcome caught = check_bounded(bad->output_bits, reference.value, reference.bound, shape.head_dim);
        CHECK_FALSE(caught.pass);
        REQUIRE(!caught.first_mismatches.empty());
        CHECK(caught.first_mismatches[0].index == 3ull * shape.head_dim + 5);
      }
      launch.inject = {};
    }
  }
}

TEST_CASE("cuda: memory patterns pass clean and locate stored and transient flips", "[.gpu]") {
  MemoryLaunch launch;
  launch.bytes = (1ull << 30) + (256ull << 20);  // two chunks
  launch.seed = 77;
  launch.patterns = {MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address,
                     MemoryPattern::moving_inversions, MemoryPattern::random};
  auto clean = gpu().run_memory(launch);
  REQUIRE(clean.ok());
  CHECK(clean->bad_words == 0);
  CHECK(clean->words_checked == launch.bytes / 4 * launch.patterns.size());
  CHECK(clean->device_seconds > 0.0);
  std::printf("memory: %.1f GB/s over %llu bytes\n", clean->bytes_moved / clean->device_seconds / 1e9,
              static_cast<unsigned long long>(launch.bytes));

  const std::uint64_t word = (1ull << 28) + 12345;  // in the second chunk
  launch.patterns = {MemoryPattern::random};
  launch.inject = Injection{true, word, 1u << 13, false};
  auto stored = gpu().run_memory(launch);
  REQUIRE(stored.ok());
  CHECK(stored->bad_words == 1);
  REQUIRE(stored->first_bad.size() == 1);
  CHECK(stored->first_bad[0].offset == word * 4);
  CHECK((stored->first_bad[0].expected ^ stored->first_bad[0].actual) == (1u << 13));
  CHECK(stored->first_bad[0].reread == stored->first_bad[0].actual);
  CHECK(stored->bit_histogram[13] == 1);

  launch.inject.transient = true;
  auto transient = gpu().run_memory(launch);
  REQUIRE(transient.ok());
  REQUIRE(transient->first_bad.size() == 1);
  CHECK(transient->first_bad[0].reread == transient->first_bad[0].expected);
}

TEST_CASE("cuda: retention block is written once and verifies clean later", "[.gpu]") {
  auto first = gpu().check_retention(64ull << 20, 8);
  REQUIRE(first.ok());
  CHECK(first->bad_words == 0);
  auto second = gpu().check_retention(64ull << 20, 8);
  REQUIRE(second.ok());
  CHECK(second->bad_words == 0);
  CHECK(second->age_seconds > 0.0);
}

TEST_CASE("cuda: every registered probe passes with its default specs", "[.gpu]") {
  for (const ProbeDescriptor& probe : probe_registry().all()) {
    // A probe whose descriptor does not list the CUDA backend (the canary) is skipped by
    // run_probe, never run: that is what the daemon counts too.
    const bool on_cuda = std::find(probe.backends.begin(), probe.backends.end(), "cuda") != probe.backends.end();
    for (ProbeSpec spec : probe.default_specs(gpu().info())) {
      const ProbeResult result = run_probe(gpu(), spec, goldens());
      INFO(probe.id << " " << spec_key(spec) << " kernel " << result.kernel << ": " << result.error
                    << result.skip_reason);
      if (on_cuda) {
        CHECK(result.status == RunStatus::pass);
      } else {
        CHECK(result.status == RunStatus::skipped);
        CHECK(result.skip_kind == SkipKind::not_implemented);
      }
    }
  }
}

namespace {

// The driver as the backend loads it, with device 0's primary context (the one the backend uses)
// current on this thread: for what the backend does not offer, holding memory and copying it.
struct DriverContext {
  DriverContext() {
    auto loaded = cuda::load_driver_api();
    if (!loaded) FAIL(loaded.error().message);
    api = *loaded;
    REQUIRE(api->DeviceGet(&device, 0) == CUDA_SUCCESS);
    REQUIRE(api->DevicePrimaryCtxRetain(&context, device) == CUDA_SUCCESS);
    REQUIRE(api->CtxSetCurrent(context) == CUDA_SUCCESS);
  }
  ~DriverContext() { api->DevicePrimaryCtxRelease(device); }
  // An entry point the backend does not resolve, through the cuGetProcAddress it uses.
  template <typename Fn>
  Fn entry(const char* name) const {
    void* library = dlopen(api->library.c_str(), RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(library != nullptr);
    auto get_proc = reinterpret_cast<PFN_cuGetProcAddress_v12000>(dlsym(library, "cuGetProcAddress_v2"));
    dlclose(library);  // the backend keeps the library loaded; drop the reference NOLOAD took
    REQUIRE(get_proc != nullptr);
    void* pfn = nullptr;
    CUdriverProcAddressQueryResult found{};
    INFO(name);
    REQUIRE(get_proc(name, &pfn, cuda::k_driver_abi_version, CU_GET_PROC_ADDRESS_DEFAULT, &found) == CUDA_SUCCESS);
    REQUIRE(found == CU_GET_PROC_ADDRESS_SUCCESS);
    return reinterpret_cast<Fn>(pfn);
  }
  std::uint64_t free_bytes() const {
    std::size_t free = 0, total = 0;
    return api->MemGetInfo(&free, &total) == CUDA_SUCCESS ? free : 0;
  }
  std::shared_ptr<const cuda::DriverApi> api;
  CUdevice device = 0;
  CUcontext context = nullptr;
};

}  // namespace

TEST_CASE("cuda: a run whose memory the device cannot give is skipped, not failed", "[.gpu][oom]") {
  gpu();  // the backend's context, module and stream exist before the memory is taken
  DriverContext driver;
  // Hold all but about 32 MiB of the free memory, in blocks from 256 MiB down to 1 MiB.
  constexpr std::uint64_t k_left = 32ull << 20;
  std::vector<CUdeviceptr> held;
  for (std::uint64_t block = 256ull << 20; block >= (1ull << 20); block /= 2) {
    CUdeviceptr ptr = 0;
    while (driver.free_bytes() > k_left + block && driver.api->MemAlloc(&ptr, block) == CUDA_SUCCESS)
      held.push_back(ptr);
  }
  std::printf("holding %zu blocks; %llu bytes left free\n", held.size(),
              static_cast<unsigned long long>(driver.free_bytes()));
  // C alone is 64 MiB, more than is left.
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.dtype = Dtype::f32;
  spec.mode = Mode::exact;
  spec.gemm = {4096, 4096, 16};
  const ProbeResult starved = run_probe(gpu(), spec, goldens());
  INFO(starved.error << starved.skip_reason);
  CHECK(starved.status == RunStatus::skipped);
  CHECK(starved.skip_kind == SkipKind::out_of_memory);
  for (CUdeviceptr ptr : held) driver.api->MemFree(ptr);
  // With the memory back, the same run passes: the device was never at fault.
  const ProbeResult fed = run_probe(gpu(), spec, goldens());
  INFO(fed.error << fed.skip_reason);
  CHECK(fed.status == RunStatus::pass);
}

// Prints the memory kernels' bandwidth per pattern next to cuMemcpyDtoDAsync on the same region
// size, both counted as bytes read plus bytes written (the memory probe's bytes_moved), so the
// ratio says how close the probe comes to the device's own copy (issue 19). A measurement, not a
// timed assertion; it fails only when the driver calls fail or a pattern finds bad words. The
// runner (tests/gpu/run.sh) copies the "bandwidth:" lines into its results file.
TEST_CASE("cuda: memory kernels' bandwidth next to cuMemcpyDtoD", "[.gpu][bandwidth]") {
  gpu();
  DriverContext driver;
  const auto copy = driver.entry<PFN_cuMemcpyDtoDAsync_v3020>("cuMemcpyDtoDAsync");
  const auto& api = *driver.api;

  // 1 GiB, or a quarter of the free memory (two copies of it must fit), in whole MiB.
  const std::uint64_t bytes = std::min<std::uint64_t>(1ull << 30, driver.free_bytes() / 4) & ~((1ull << 20) - 1);
  REQUIRE(bytes > 0);
  CUdeviceptr src = 0, dst = 0;
  CUstream stream = nullptr;
  CUevent start = nullptr, stop = nullptr;
  REQUIRE(api.MemAlloc(&src, bytes) == CUDA_SUCCESS);
  REQUIRE(api.MemAlloc(&dst, bytes) == CUDA_SUCCESS);
  REQUIRE(api.StreamCreate(&stream, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS);
  REQUIRE(api.EventCreate(&start, CU_EVENT_DEFAULT) == CUDA_SUCCESS);
  REQUIRE(api.EventCreate(&stop, CU_EVENT_DEFAULT) == CUDA_SUCCESS);
  float best_ms = 0.0f;
  for (int i = 0; i < 6; ++i) {  // the first copy warms up; the best of the other five counts
    REQUIRE(api.EventRecord(start, stream) == CUDA_SUCCESS);
    REQUIRE(copy(dst, src, bytes, stream) == CUDA_SUCCESS);
    REQUIRE(api.EventRecord(stop, stream) == CUDA_SUCCESS);
    CUresult state;
    while ((state = api.EventQuery(stop)) == CUDA_ERROR_NOT_READY)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    REQUIRE(state == CUDA_SUCCESS);
    float ms = 0.0f;
    REQUIRE(api.EventElapsedTime(&ms, start, stop) == CUDA_SUCCESS);
    if (i > 0 && (best_ms == 0.0f || ms < best_ms)) best_ms = ms;
  }
  api.EventDestroy(start);
  api.EventDestroy(stop);
  api.StreamDestroy(stream);
  api.MemFree(src);
  api.MemFree(dst);
  REQUIRE(best_ms > 0.0f);
  const double copy_rate = 2.0 * static_cast<double>(bytes) / (best_ms / 1e3);
  std::printf("bandwidth: cuMemcpyDtoDAsync bytes=%llu gb_s=%.1f (read+written, best of 5)\n",
              static_cast<unsigned long long>(bytes), copy_rate / 1e9);

  const MemoryPattern patterns[] = {MemoryPattern::walking_ones, MemoryPattern::walking_zeros,
                                    MemoryPattern::own_address, MemoryPattern::moving_inversions,
                                    MemoryPattern::random};
  for (MemoryPattern pattern : patterns) {
    MemoryLaunch launch;
    launch.bytes = bytes;
    launch.seed = 3;
    launch.patterns = {pattern};
    auto run = gpu().run_memory(launch);
    REQUIRE(run.ok());
    CHECK(run->bad_words == 0);
    REQUIRE(run->device_seconds > 0.0);
    const double rate = static_cast<double>(run->bytes_moved) / run->device_seconds;
    std::printf("bandwidth: memory_probe pattern=%s bytes=%llu gb_s=%.1f ratio_to_dtod=%.3f\n", to_string(pattern),
                static_cast<unsigned long long>(bytes), rate / 1e9, rate / copy_rate);
  }
}

TEST_CASE("cuda: Vulkan and CUDA agree bit for bit in exact mode", "[.gpu]") {
  static Discovery all = discover_devices();
  ComputeDevice* vulkan = nullptr;
  for (auto& device : all.devices) {
    if (device->info().backend != "vulkan") continue;
    if (device->info().uuid == gpu().info().uuid) {
      vulkan = device.get();  // the same physical GPU through Vulkan
      break;
    }
    if (vulkan == nullptr) vulkan = device.get();
  }
  if (vulkan == nullptr) FAIL("no Vulkan device to compare with");
  std::printf("comparing %s (%s) with %s (%s)%s\n", gpu().info().id.c_str(), gpu().info().name.c_str(),
              vulkan->info().id.c_str(), vulkan->info().name.c_str(),
              vulkan->info().uuid == gpu().info().uuid ? ", same GPU" : ", a different device");
  const GemmShape shape{192, 160, 256};
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    GemmLaunch launch;
    launch.shape = shape;
    launch.dtype = dtype;
    launch.mode = Mode::exact;
    launch.seed = 4242;
    launch.exact_radius = gen::exact_radius(shape.k);
    auto on_vulkan = vulkan->run_gemm(launch);
    if (!on_vulkan) {
      WARN("Vulkan cannot run " << to_string(dtype) << ": " << on_vulkan.error().message);
      continue;
    }
    for (const PathCase& path : paths_for(dtype)) {
      INFO(to_string(dtype) << " " << path.name);
      const KernelRun on_cuda = gemm(dtype, Mode::exact, shape, 4242, path.path);
      CHECK(on_cuda.output_bits == on_vulkan->output_bits);
    }
  }
}

// The adversarial exact case the probe's generator cannot make (its exact inputs have random
// signs, so sums stay near sqrt(K)·R²): inputs of one sign at the radius's edge, values 61..64
// (exact in f32, f16 and bf16) with row 0 of A and column 0 of B all 64, so every partial sum climbs
// toward K·R² = 2^24 and C[0][0] is 2^24 itself, the last integer fp32 holds next to its
// neighbours. Any lost or doubled term, any rounded partial sum shows. The inputs are uploaded and
// the backend's own GEMM kernels from the embedded fatbin are launched on them directly (the
// backend generates its inputs on the device and takes none). Same inputs as the CPU-executed
// kernels' test (tests/kernels/cuda/host), checked bit for bit against the double product.
TEST_CASE("cuda: adversarial exact GEMM, K=4096 with partial sums up to 2^24, is bit-exact on every path", "[.gpu]") {
  gpu();
  DriverContext driver;
  const auto& api = *driver.api;
  const auto upload = driver.entry<PFN_cuMemcpyHtoD_v3020>("cuMemcpyHtoD");
  const auto download = driver.entry<PFN_cuMemcpyDtoH_v3020>("cuMemcpyDtoH");
  CUmodule module = nullptr;
  REQUIRE(api.ModuleLoadData(&module, cuda::embedded_fatbin().data()) == CUDA_SUCCESS);

  constexpr std::uint32_t m = 80, n = 80, k = 4096;  // 2x2 SIMT tiles, with partial ones
  std::vector<float> a(std::size_t{m} * k), b(std::size_t{k} * n);
  for (std::uint32_t i = 0; i < a.size(); ++i)
    a[i] = i < k ? 64.0f : 64.0f - static_cast<float>(gen::random_bits(3, 1, i) % 4);
  for (std::uint32_t i = 0; i < b.size(); ++i)
    b[i] = i % n == 0 ? 64.0f : 64.0f - static_cast<float>(gen::random_bits(3, 2, i) % 4);
  std::vector<double> truth(std::size_t{m} * n, 0.0);
  for (std::uint32_t i = 0; i < m; ++i)
    for (std::uint32_t p = 0; p < k; ++p)
      for (std::uint32_t j = 0; j < n; ++j) truth[i * n + j] += double{a[i * k + p]} * b[p * n + j];
  REQUIRE(truth[0] == 16777216.0);

  for (const Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const std::uint32_t code = dtype == Dtype::f32   ? ck::dtype_f32
                               : dtype == Dtype::f16 ? ck::dtype_f16
                                                     : ck::dtype_bf16;
    auto encode = [&](const std::vector<float>& values) {
      std::vector<unsigned char> bytes(values.size() * ck::element_bytes(code));
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (dtype == Dtype::f32) {
          std::memcpy(bytes.data() + 4 * i, &values[i], 4);
        } else {
          const std::uint16_t half =
              dtype == Dtype::f16 ? gen::to_half_bits_exact(values[i]) : gen::to_bf16_bits_exact(values[i]);
          std::memcpy(bytes.data() + 2 * i, &half, 2);
        }
      }
      return bytes;
    };
    const std::vector<unsigned char> a_bytes = encode(a), b_bytes = encode(b);
    std::vector<std::pair<ck::GemmVariant, const char*>> kernels{{ck::gemm_simt, ck::k_fn_gemm_simt}};
    if (dtype != Dtype::f32 && ck::tensor_cores_support(code, gpu().compute_capability() / 10)) {
      kernels.push_back({ck::gemm_tensor_wmma, dtype == Dtype::f16 ? ck::k_fn_gemm_wmma_f16 : ck::k_fn_gemm_wmma_bf16});
    }
    for (const auto& [variant, name] : kernels) {
      INFO(to_string(dtype) << " " << ck::gemm_variant_name(variant));
      CUfunction function = nullptr;
      REQUIRE(api.ModuleGetFunction(&function, module, name) == CUDA_SUCCESS);
      CUdeviceptr da = 0, db = 0, dc = 0;
      REQUIRE(api.MemAlloc(&da, a_bytes.size()) == CUDA_SUCCESS);
      REQUIRE(api.MemAlloc(&db, b_bytes.size()) == CUDA_SUCCESS);
      REQUIRE(api.MemAlloc(&dc, truth.size() * 4) == CUDA_SUCCESS);
      REQUIRE(upload(da, a_bytes.data(), a_bytes.size()) == CUDA_SUCCESS);
      REQUIRE(upload(db, b_bytes.data(), b_bytes.size()) == CUDA_SUCCESS);
      ck::GemmParams params{};
      params.a = da;
      params.b = db;
      params.c = dc;
      params.m = m;
      params.n = n;
      params.k = k;
      params.dtype = code;
      void* args[] = {&params};
      const ck::Dim3 grid = ck::gemm_grid(m, n), block = ck::gemm_block(variant);
      REQUIRE(api.LaunchKernel(function, grid.x, grid.y, grid.z, block.x, block.y, block.z, 0, nullptr, args,
                               nullptr) == CUDA_SUCCESS);
      std::vector<std::uint32_t> bits(truth.size());
      REQUIRE(download(bits.data(), dc, bits.size() * 4) == CUDA_SUCCESS);  // waits for the kernel
      api.MemFree(da);
      api.MemFree(db);
      api.MemFree(dc);
      const CheckOutcome outcome = check_exact(bits, truth, n);
      CHECK(outcome.pass);
      CHECK(outcome.mismatched == 0);
      CHECK(std::bit_cast<float>(bits[0]) == 16777216.0f);
    }
  }
  api.ModuleUnload(module);
}

#endif  // SUBSTRATE_WITH_CUDA
