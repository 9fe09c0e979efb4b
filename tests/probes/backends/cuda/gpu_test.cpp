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

#include <cmath>
#include <cstdio>
#include <map>

#include "kernels/cuda/launch.hpp"
#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "kernels/golden/golden.hpp"
#include "probes/backends/cuda/cuda_backend.hpp"
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
    for (ProbeSpec spec : probe.default_specs(gpu().info())) {
      const ProbeResult result = run_probe(gpu(), spec, goldens());
      INFO(probe.id << " " << spec_key(spec) << " kernel " << result.kernel << ": " << result.error);
      CHECK(result.status == RunStatus::pass);
    }
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

#endif  // SUBSTRATE_WITH_CUDA
