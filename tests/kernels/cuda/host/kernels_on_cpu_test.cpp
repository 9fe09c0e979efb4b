// The CUDA kernels' logic executed on a CPU, not the hardware: kernels/cuda/kernels.cu compiled by
// the host compiler through kernels/cuda/host (docs/cuda.md), run through the probes' own code
// paths (run_probe: the CPU goldens of kernels/golden and the checks of probes/core/check) on
// every probe, dtype and mode the CUDA backend implements, tile edges, injections and an
// adversarial exact-mode GEMM; and compared bit for bit with the Vulkan kernels on lavapipe where
// the two algorithms must agree. Nothing here says anything about a GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>

#include "kernels/cuda/host/kernels_on_cpu.hpp"
#include "kernels/fingerprint.hpp"
#include "kernels/generator.hpp"
#include "kernels/golden/golden.hpp"
#include "probes/core/check.hpp"
#include "probes/core/registry.hpp"
#include "tests/support/test_device.hpp"

using namespace substrate;
namespace ck = substrate::cuda_kernels;
namespace cpu = substrate::cuda_on_cpu;

namespace {

std::uint32_t dtype_code(Dtype dtype) {
  return dtype == Dtype::f32 ? ck::dtype_f32 : dtype == Dtype::f16 ? ck::dtype_f16 : ck::dtype_bf16;
}

// A ComputeDevice whose kernels are the CUDA kernels executed on the CPU: the launches, parameter
// blocks, grids and pass sequences of probes/backends/cuda/cuda_device.cpp, with host vectors for
// device memory. `tensor_cores` picks the wmma GEMM for f16 and bf16, as on an sm_80+ GPU.
class CudaOnCpuDevice : public ComputeDevice {
 public:
  explicit CudaOnCpuDevice(bool tensor_cores, cpu::MmaRounding rounding = cpu::MmaRounding::nearest)
      : tensor_cores_(tensor_cores) {
    options_.mma_rounding = rounding;
    info_.id = tensor_cores ? "cuda_on_cpu_wmma0" : "cuda_on_cpu_simt0";
    info_.backend = "cuda";  // what the probes see: the CUDA backend's probes, dtypes and modes
    info_.name = "the CUDA kernels' logic executed on a CPU (not a GPU)";
    info_.vendor = "cpu";
    info_.device_type = "cpu";
    info_.kernel_build = "cuda-on-cpu";
  }
  const DeviceInfo& info() const override { return info_; }
  std::uint64_t free_memory_bytes() const override { return 64ull << 20; }
  void set_timeout_seconds(double) override {}

  template <class Params>
  Status launch(const char* name, ck::Dim3 grid, ck::Dim3 block, std::uint32_t smem, const Params& params) {
    return cpu::launch(name, grid, block, smem, params, options_);
  }

  Expected<std::vector<std::uint32_t>> generate_raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t first,
                                                    std::uint32_t count) override {
    std::vector<std::uint32_t> out(count);
    const ck::RawParams params{cpu::device_pointer(out.data()), seed, first, count, stream};
    TRY(launch(ck::k_fn_generate_raw, {ck::linear_blocks(count), 1, 1}, {ck::k_linear_threads, 1, 1}, 0, params));
    return out;
  }

  Expected<KernelRun> run_gemm(const GemmLaunch& request) override {
    const GemmShape& s = request.shape;
    const std::uint32_t dtype = dtype_code(request.dtype);
    const ck::GemmVariant variant =
        tensor_cores_ && ck::tensor_cores_support(dtype, 9) ? ck::gemm_tensor_wmma : ck::gemm_simt;
    const std::uint64_t a_count = std::uint64_t{s.m} * s.k, b_count = std::uint64_t{s.k} * s.n;
    std::vector<std::uint32_t> a(ck::buffer_bytes(a_count, dtype) / 4), b(ck::buffer_bytes(b_count, dtype) / 4);
    const std::uint32_t mode = request.mode == Mode::exact ? ck::mode_exact : ck::mode_random;
    for (auto [buffer, count, stream] :
         {std::tuple{&a, a_count, gen::stream_gemm_a}, {&b, b_count, gen::stream_gemm_b}}) {
      const ck::FillParams fill{
          cpu::device_pointer(buffer->data()), count, request.seed, stream, dtype, mode, request.exact_radius};
      TRY(launch(ck::k_fn_fill, {ck::linear_blocks(count), 1, 1}, {ck::k_linear_threads, 1, 1}, 0, fill));
    }
    KernelRun run;
    TRY_ASSIGN(run.output_bits, gemm_on(a.data(), b.data(), request, variant));
    run.kernel = ck::gemm_variant_name(variant);
    run.accumulation_unit_roundoff = ck::gemm_bound_unit_roundoff(variant);
    return run;
  }

  // The GEMM kernel alone on inputs already in A and B's storage format.
  Expected<std::vector<std::uint32_t>> gemm_on(const void* a, const void* b, const GemmLaunch& request,
                                               ck::GemmVariant variant) {
    const GemmShape& s = request.shape;
    std::vector<std::uint32_t> c(std::uint64_t{s.m} * s.n);
    ck::GemmParams params{};
    params.a = cpu::device_pointer(a);
    params.b = cpu::device_pointer(b);
    params.c = cpu::device_pointer(c.data());
    params.inject_element = request.inject.element;
    params.m = s.m;
    params.n = s.n;
    params.k = s.k;
    params.dtype = dtype_code(request.dtype);
    params.inject_enabled = request.inject.enabled ? 1u : 0u;
    params.inject_mask = request.inject.xor_mask;
    params.inject_stride = request.inject.stride;
    params.inject_count = request.inject.count;
    const char* name = variant == ck::gemm_simt        ? ck::k_fn_gemm_simt
                       : params.dtype == ck::dtype_f16 ? ck::k_fn_gemm_wmma_f16
                                                       : ck::k_fn_gemm_wmma_bf16;
    TRY(launch(name, ck::gemm_grid(s.m, s.n), ck::gemm_block(variant), 0, params));
    return c;
  }

  Status check_attention(const AttentionLaunch& request) const override {
    const AttentionShape& s = request.shape;
    // The grid and block limits are far from the test shapes; shared memory is the one that binds.
    if (ck::attention_smem_bytes(s.seq_len, s.head_dim) > cpu::k_dynamic_smem_bytes) {
      return Error{ErrorKind::invalid_argument, "attention row does not fit in the dynamic shared memory"};
    }
    return ok_status();
  }

  Expected<KernelRun> run_attention(const AttentionLaunch& request) override {
    TRY(check_attention(request));
    const AttentionShape& s = request.shape;
    const std::uint32_t dtype = dtype_code(request.dtype);
    const std::uint64_t count = std::uint64_t{s.heads} * s.seq_len * s.head_dim;
    std::vector<std::uint32_t> q(ck::buffer_bytes(count, dtype) / 4), k(q.size()), v(q.size()), o(count);
    for (auto [buffer, stream] :
         {std::pair{&q, gen::stream_attention_q}, {&k, gen::stream_attention_k}, {&v, gen::stream_attention_v}}) {
      const ck::FillParams fill{
          cpu::device_pointer(buffer->data()), count, request.seed, stream, dtype, ck::mode_random, 0};
      TRY(launch(ck::k_fn_fill, {ck::linear_blocks(count), 1, 1}, {ck::k_linear_threads, 1, 1}, 0, fill));
    }
    ck::AttentionParams params{};
    params.q = cpu::device_pointer(q.data());
    params.k = cpu::device_pointer(k.data());
    params.v = cpu::device_pointer(v.data());
    params.o = cpu::device_pointer(o.data());
    params.inject_element = request.inject.element;
    params.seq_len = s.seq_len;
    params.heads = s.heads;
    params.head_dim = s.head_dim;
    params.dtype = dtype;
    params.causal = s.causal ? 1u : 0u;
    params.scale = golden::attention_scale(s.head_dim);
    params.inject_enabled = request.inject.enabled ? 1u : 0u;
    params.inject_mask = request.inject.xor_mask;
    params.inject_stride = request.inject.stride;
    params.inject_count = request.inject.count;
    TRY(launch(ck::k_fn_attention, ck::attention_grid(s.seq_len, s.heads), {ck::k_attention_threads, 1, 1},
               static_cast<std::uint32_t>(ck::attention_smem_bytes(s.seq_len, s.head_dim)), params));
    KernelRun run;
    run.kernel = ck::k_kernel_attention;
    run.output_bits = std::move(o);
    return run;
  }

  Expected<MemoryRun> run_memory(const MemoryLaunch& request) override {
    if (request.bytes < 4 || request.bytes % 4 != 0) {
      return Error{ErrorKind::invalid_argument, "memory region must be a positive multiple of 4 bytes"};
    }
    const std::uint32_t max_reported = std::min(request.max_reported, ck::k_memory_max_reported);
    MemoryRun run;
    run.kernel = ck::k_kernel_memory;
    run.bytes_tested = request.bytes;
    Report report(max_reported);
    std::vector<std::uint32_t> region(request.bytes / 4);
    std::uint64_t first_word = 0;
    for (std::uint64_t i = 0; i < ck::memory_chunk_count(request.bytes); ++i) {
      const std::uint64_t words = ck::memory_chunk_bytes(request.bytes, i) / 4;
      for (MemoryPattern pattern : request.patterns) {
        const auto code = static_cast<std::uint32_t>(pattern);
        ck::MemoryParams params = memory_params(region.data() + first_word, report, first_word, words, request.seed,
                                                code, max_reported, request.inject);
        auto pass = [&](std::uint32_t op, std::uint32_t invert) {
          params.op = op;
          params.invert = invert;
          return launch(ck::k_fn_memory, {ck::linear_blocks(words), 1, 1}, {ck::k_linear_threads, 1, 1}, 0, params);
        };
        TRY(pass(ck::op_write, 0));
        if (code == ck::pattern_moving_inversions) {
          TRY(pass(ck::op_verify_then_write_inverse, 0));
          TRY(pass(ck::op_verify_then_write_inverse, 1));
        }
        TRY(pass(ck::op_verify, 0));
        run.bytes_moved += words * ck::memory_bytes_moved_per_word(code);
        run.words_checked += words;
      }
      first_word += words;
    }
    report.collect(run.bad_words, run.bit_histogram, run.first_bad);
    return run;
  }

  Expected<RetentionRun> check_retention(std::uint64_t bytes, std::uint64_t seed) override {
    RetentionRun run;
    run.bytes = bytes;
    const bool fresh = retention_.size() != bytes / 4 || retention_seed_ != seed;
    if (fresh) retention_.assign(bytes / 4, 0);
    retention_seed_ = seed;
    constexpr std::uint32_t k_reported = 16;
    Report report(k_reported);
    ck::MemoryParams params =
        memory_params(retention_.data(), report, 0, bytes / 4, seed, ck::pattern_retention, k_reported, Injection{});
    params.op = fresh ? ck::op_write : ck::op_verify;
    TRY(launch(ck::k_fn_memory, {ck::linear_blocks(bytes / 4), 1, 1}, {ck::k_linear_threads, 1, 1}, 0, params));
    std::uint32_t histogram[32] = {};
    report.collect(run.bad_words, histogram, run.first_bad);
    return run;
  }

 private:
  // The memory kernel's report buffer: MemoryReportHeader, then max_reported entries.
  struct Report {
    explicit Report(std::uint32_t max_reported)
        : capacity(max_reported),
          words((sizeof(ck::MemoryReportHeader) +
                 std::uint64_t{std::max(max_reported, 1u)} * sizeof(ck::MemoryReportEntry)) /
                8) {}
    void collect(std::uint64_t& bad_words, std::uint32_t (&histogram)[32], std::vector<BadWord>& first_bad) const {
      ck::MemoryReportHeader header;
      std::memcpy(&header, words.data(), sizeof header);
      bad_words += header.bad_words;
      for (int bit = 0; bit < 32; ++bit) histogram[bit] += header.histogram[bit];
      for (std::uint32_t r = 0; r < std::min(header.reported, capacity); ++r) {
        ck::MemoryReportEntry entry;
        std::memcpy(&entry, reinterpret_cast<const unsigned char*>(words.data()) + sizeof header + r * sizeof entry,
                    sizeof entry);
        first_bad.push_back(
            {entry.word * 4, entry.expected, entry.actual, entry.reread, static_cast<MemoryPattern>(entry.pattern)});
      }
      std::sort(first_bad.begin(), first_bad.end(), [](const BadWord& x, const BadWord& y) {
        return x.offset != y.offset ? x.offset < y.offset : x.pattern < y.pattern;
      });
    }
    std::uint32_t capacity;
    std::vector<std::uint64_t> words;  // 8-byte aligned, zeroed like cuMemsetD32Async does
  };

  static ck::MemoryParams memory_params(std::uint32_t* region, Report& report, std::uint64_t first_word,
                                        std::uint64_t words, std::uint64_t seed, std::uint32_t pattern,
                                        std::uint32_t max_reported, const Injection& inject) {
    ck::MemoryParams p{};
    p.region = cpu::device_pointer(region);
    p.report = cpu::device_pointer(report.words.data());
    p.first_word = first_word;
    p.words = words;
    p.seed = seed;
    p.inject_word = inject.element;
    p.pattern = pattern;
    p.pass =
        (pattern == ck::pattern_walking_ones || pattern == ck::pattern_walking_zeros) ? ck::walking_pass(seed) : 0u;
    p.max_reported = max_reported;
    p.inject_enabled = inject.enabled ? 1u : 0u;
    p.inject_mask = inject.xor_mask;
    p.inject_transient = inject.transient ? 1u : 0u;
    return p;
  }

  bool tensor_cores_;
  cpu::LaunchOptions options_;
  DeviceInfo info_;
  std::vector<std::uint32_t> retention_;
  std::uint64_t retention_seed_ = 0;
};

GoldenCache& goldens() {
  static GoldenCache cache;
  return cache;
}

ProbeSpec gemm_spec(GemmShape shape, Dtype dtype, Mode mode, std::uint64_t seed = 7) {
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.dtype = dtype;
  spec.mode = mode;
  spec.seed = seed;
  spec.gemm = shape;
  return spec;
}

ProbeSpec attention_spec(AttentionShape shape, Dtype dtype, std::uint64_t seed = 11) {
  ProbeSpec spec;
  spec.probe = "attention";
  spec.dtype = dtype;
  spec.mode = Mode::random;
  spec.seed = seed;
  spec.attention = shape;
  return spec;
}

std::string describe(const ProbeResult& result) {
  std::string text = spec_key(result.spec) + " on " + result.device.id + ": " + to_string(result.status);
  if (!result.error.empty()) text += " (" + result.error + ")";
  text += ", " + std::to_string(result.check.mismatched) + " mismatched, budget used " +
          std::to_string(result.check.budget_used);
  return text;
}

void require_pass(ComputeDevice& device, const ProbeSpec& spec) {
  const ProbeResult result = run_probe(device, spec, goldens());
  INFO(describe(result));
  REQUIRE(result.status == RunStatus::pass);
  CHECK(result.check.checked > 0);
}

}  // namespace

TEST_CASE("cuda kernels on a CPU (not the hardware): the generator kernel matches kernels/generator.hpp",
          "[cuda_on_cpu]") {
  CudaOnCpuDevice device(false);
  for (const std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1} << 32, (std::uint64_t{1} << 32) - 100}) {
    auto words = device.generate_raw(0x1234567890abcdefull, gen::stream_gemm_b, first, 1000);
    REQUIRE(words.ok());
    for (std::uint32_t i = 0; i < 1000; ++i) {
      INFO("index " << first + i);
      REQUIRE((*words)[i] == gen::random_bits(0x1234567890abcdefull, gen::stream_gemm_b, first + i));
    }
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): grid-stride loops cover counts beyond the grid", "[cuda_on_cpu]") {
  // On a GPU the grid is capped at 65535 blocks (launch.hpp); a smaller grid here walks the same
  // grid-stride loop of generate_raw, fill and memory without 16M-element buffers.
  constexpr std::uint32_t count = 5000;
  std::vector<std::uint32_t> raw(count);
  REQUIRE(cpu::launch(ck::k_fn_generate_raw, {3, 1, 1}, {ck::k_linear_threads, 1, 1}, 0,
                      ck::RawParams{cpu::device_pointer(raw.data()), 77, 10, count, gen::stream_attention_v})
              .ok());
  for (std::uint32_t i = 0; i < count; ++i) REQUIRE(raw[i] == gen::random_bits(77, gen::stream_attention_v, 10 + i));
  std::vector<float> filled(count);
  REQUIRE(cpu::launch(ck::k_fn_fill, {2, 1, 1}, {ck::k_linear_threads, 1, 1}, 0,
                      ck::FillParams{cpu::device_pointer(filled.data()), count, 77, gen::stream_gemm_a, ck::dtype_f32,
                                     ck::mode_random, 0})
              .ok());
  const std::vector<float> golden = golden::generate(77, gen::stream_gemm_a, count, Dtype::f32, Mode::random, 0);
  CHECK(filled == golden);
}

TEST_CASE("cuda kernels on a CPU (not the hardware): GEMM on CUDA cores, every dtype and mode, tile edges",
          "[cuda_on_cpu]") {
  CudaOnCpuDevice device(false);
  // One tile, one element, and shapes that are no multiple of the 64x64 tile or the 16-deep slice.
  for (const GemmShape shape :
       {GemmShape{64, 64, 64}, GemmShape{1, 1, 1}, GemmShape{65, 33, 17}, GemmShape{70, 129, 50}}) {
    for (const Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
      for (const Mode mode : {Mode::exact, Mode::random}) require_pass(device, gemm_spec(shape, dtype, mode));
    }
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): GEMM on emulated tensor cores (wmma), f16 and bf16, tile edges",
          "[cuda_on_cpu]") {
  // truncating sums every mma the coarsest way docs/cuda.md's tensor-core bound allows for; the
  // 2^-22 bound must hold. Exact mode gives the same bits under both models; random mode does
  // not (else the truncating model would test nothing).
  CudaOnCpuDevice nearest(true, cpu::MmaRounding::nearest), truncating(true, cpu::MmaRounding::truncating);
  for (const GemmShape shape :
       {GemmShape{64, 64, 64}, GemmShape{1, 1, 1}, GemmShape{65, 33, 17}, GemmShape{70, 129, 50}}) {
    for (const Dtype dtype : {Dtype::f16, Dtype::bf16}) {
      for (const Mode mode : {Mode::exact, Mode::random}) {
        std::string fingerprints[2];
        for (int model = 0; model < 2; ++model) {
          const ProbeResult result =
              run_probe(model == 0 ? nearest : truncating, gemm_spec(shape, dtype, mode), goldens());
          INFO(describe(result) << (model == 0 ? " (nearest)" : " (truncating)"));
          REQUIRE(result.status == RunStatus::pass);
          CHECK(result.kernel == "cuda.gemm.wmma16");
          fingerprints[model] = result.fingerprint;
        }
        INFO(spec_key(gemm_spec(shape, dtype, mode)));
        if (mode == Mode::exact) CHECK(fingerprints[0] == fingerprints[1]);
        // (At K=17 bf16 sums of 8-bit significands may all fit in 24 bits: no truncation to see.)
        if (mode == Mode::random && shape.k >= 50) CHECK(fingerprints[0] != fingerprints[1]);
      }
    }
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): adversarial exact GEMM, K=4096, partial sums up to 2^24",
          "[cuda_on_cpu]") {
  // The probe's own exact mode at K=4096 (radius 64) ...
  CudaOnCpuDevice wmma(true);
  require_pass(wmma, gemm_spec({64, 64, 4096}, Dtype::f16, Mode::exact));
  // ... and inputs of one sign at the radius's edge, so every partial sum climbs to K*R^2 = 2^24,
  // the last integer fp32 holds next to its neighbours: any lost or doubled term, any rounding
  // of a partial sum, shows. Values 61..64 (exact in f32, f16 and bf16); rows 0 hold 64 only.
  constexpr std::uint32_t m = 16, n = 16, k = 4096;
  std::vector<float> a(m * k), b(k * n);
  for (std::uint32_t i = 0; i < a.size(); ++i)
    a[i] = i < k ? 64.0f : 64.0f - static_cast<float>(gen::random_bits(3, 1, i) % 4);
  for (std::uint32_t i = 0; i < b.size(); ++i)
    b[i] = i % n == 0 ? 64.0f : 64.0f - static_cast<float>(gen::random_bits(3, 2, i) % 4);
  std::vector<double> truth(m * n, 0.0);
  for (std::uint32_t i = 0; i < m; ++i)
    for (std::uint32_t p = 0; p < k; ++p)
      for (std::uint32_t j = 0; j < n; ++j) truth[i * n + j] += double{a[i * k + p]} * b[p * n + j];
  REQUIRE(truth[0] == 16777216.0);  // 2^24 exactly
  for (const Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    std::vector<std::uint16_t> a16(a.size()), b16(b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      a16[i] = dtype == Dtype::f16 ? gen::to_half_bits_exact(a[i]) : gen::to_bf16_bits_exact(a[i]);
    for (std::size_t i = 0; i < b.size(); ++i)
      b16[i] = dtype == Dtype::f16 ? gen::to_half_bits_exact(b[i]) : gen::to_bf16_bits_exact(b[i]);
    const void* pa = dtype == Dtype::f32 ? static_cast<const void*>(a.data()) : a16.data();
    const void* pb = dtype == Dtype::f32 ? static_cast<const void*>(b.data()) : b16.data();
    GemmLaunch request;
    request.shape = {m, n, k};
    request.dtype = dtype;
    // Tensor cores under the truncating model, the one that could drop bits (it does not: every
    // addend is an integer below 2^24, so the quantum at the largest exponent is at most 1).
    for (const auto variant : {ck::gemm_simt, ck::gemm_tensor_wmma}) {
      if (variant == ck::gemm_tensor_wmma && dtype == Dtype::f32) continue;
      CudaOnCpuDevice device(variant == ck::gemm_tensor_wmma, cpu::MmaRounding::truncating);
      auto out = device.gemm_on(pa, pb, request, variant);
      REQUIRE(out.ok());
      const CheckOutcome check = check_exact(*out, truth, n);
      INFO(to_string(dtype) << " " << ck::gemm_variant_name(variant));
      CHECK(check.pass);
      CHECK(check.mismatched == 0);
    }
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): an exact zero sum on tensor cores comes out +0", "[cuda_on_cpu]") {
  // Row i of A is (+1, -1, +1, -1, ...) and B is all ones, so every output is an exact zero sum.
  // The emulated mma answers -0 for it (truncating); the kernel's epilogue must store +0, the
  // golden's bits, as the CUDA-core path does.
  constexpr std::uint32_t m = 20, n = 20, k = 32;
  std::vector<std::uint16_t> a(m * k), b(k * n, gen::to_half_bits_exact(1.0f));
  for (std::uint32_t i = 0; i < a.size(); ++i) a[i] = gen::to_half_bits_exact(i % 2 == 0 ? 1.0f : -1.0f);
  GemmLaunch request;
  request.shape = {m, n, k};
  request.dtype = Dtype::f16;
  CudaOnCpuDevice device(true, cpu::MmaRounding::truncating);
  auto out = device.gemm_on(a.data(), b.data(), request, ck::gemm_tensor_wmma);
  REQUIRE(out.ok());
  const CheckOutcome check = check_exact(*out, std::vector<double>(m * n, 0.0), n);
  CHECK(check.pass);
  CHECK(std::all_of(out->begin(), out->end(), [](std::uint32_t bits) { return bits == 0u; }));
}

TEST_CASE("cuda kernels on a CPU (not the hardware): attention, every dtype, causal and full, odd shapes",
          "[cuda_on_cpu]") {
  CudaOnCpuDevice device(false);
  // seq_len and head_dim around the 128-thread block: fewer keys than threads, more, one.
  for (const AttentionShape shape : {AttentionShape{1, 1, 1, true}, AttentionShape{37, 2, 40, false},
                                     AttentionShape{130, 1, 129, true}, AttentionShape{64, 3, 16, false}}) {
    for (const Dtype dtype : {Dtype::f32, Dtype::f16}) require_pass(device, attention_spec(shape, dtype));
    // bf16 is not a dtype of the attention probe, but the kernel reads it: same golden, same check.
    AttentionLaunch launch;
    launch.shape = shape;
    launch.dtype = Dtype::bf16;
    launch.seed = 5;
    auto run = device.run_attention(launch);
    REQUIRE(run.ok());
    const golden::Reference reference = golden::attention(shape, Dtype::bf16, 5);
    const CheckOutcome check = check_bounded(run->output_bits, reference.value, reference.bound, shape.head_dim);
    CHECK(check.pass);
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): memory patterns pass and the retention block is read back",
          "[cuda_on_cpu]") {
  CudaOnCpuDevice device(false);
  ProbeSpec spec;
  spec.probe = "memory";
  spec.mode = Mode::random;
  spec.memory = {1.0, 4100};  // 1025 words: not a multiple of the 256-thread block
  spec.seed = 33;
  require_pass(device, spec);
  require_pass(device, spec);  // the second run verifies the retention block the first wrote
}

TEST_CASE("cuda kernels on a CPU (not the hardware): injections are caught where they were put", "[cuda_on_cpu]") {
  Injection inject;
  inject.enabled = true;
  inject.element = 70 * 129 - 2;  // in the last, partial tile
  inject.xor_mask = 1u << 30;
  SECTION("gemm, CUDA cores and tensor cores") {
    for (const bool tensor : {false, true}) {
      CudaOnCpuDevice device(tensor);
      ProbeSpec spec = gemm_spec({70, 129, 50}, Dtype::f16, Mode::exact);
      spec.inject = inject;
      const ProbeResult result = run_probe(device, spec, goldens());
      INFO(describe(result));
      REQUIRE(result.status == RunStatus::fail);
      REQUIRE(result.check.mismatched == 1);
      CHECK(result.check.first_mismatches.at(0).index == inject.element);
      CHECK(result.check.first_mismatches.at(0).xor_bits == inject.xor_mask);
    }
  }
  SECTION("gemm, a drill's pattern: count elements stride apart") {
    for (const bool tensor : {false, true}) {
      CudaOnCpuDevice device(tensor);
      ProbeSpec spec = gemm_spec({70, 129, 50}, Dtype::f16, Mode::exact);
      spec.inject = inject;
      spec.inject.element = 100;
      spec.inject.count = 4;
      spec.inject.stride = 129;  // one column, four rows
      const ProbeResult result = run_probe(device, spec, goldens());
      INFO(describe(result));
      REQUIRE(result.status == RunStatus::fail);
      REQUIRE(result.check.mismatched == 4);
      for (std::uint64_t hit = 0; hit < 4; ++hit) {
        CHECK(result.check.first_mismatches.at(hit).index == 100 + 129 * hit);
        CHECK(injection_hits(spec.inject, 100 + 129 * hit));
      }
    }
  }
  SECTION("attention") {
    CudaOnCpuDevice device(false);
    ProbeSpec spec = attention_spec({37, 2, 40, false}, Dtype::f32);
    spec.inject = inject;
    spec.inject.element = 2 * 37 * 40 - 1;
    const ProbeResult result = run_probe(device, spec, goldens());
    INFO(describe(result));
    REQUIRE(result.status == RunStatus::fail);
    REQUIRE(result.check.mismatched == 1);
    CHECK(result.check.first_mismatches.at(0).index == spec.inject.element);
  }
  SECTION("memory: a stored flip re-reads wrong, a transient one re-reads right") {
    CudaOnCpuDevice device(false);
    for (const bool transient : {false, true}) {
      MemoryLaunch launch;
      launch.bytes = 4100;
      launch.seed = 9;
      launch.patterns = {MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address,
                         MemoryPattern::moving_inversions, MemoryPattern::random};
      launch.inject.enabled = true;
      launch.inject.element = 1024;
      launch.inject.xor_mask = 0x80000001u;
      launch.inject.transient = transient;
      auto run = device.run_memory(launch);
      REQUIRE(run.ok());
      // A stored flip is written once per pattern and seen by the verify after the write; the
      // complement moving inversions writes over it is clean. A transient one is in every read:
      // moving inversions verify three times.
      const std::uint64_t expected = transient ? 7 : 5;
      CHECK(run->bad_words == expected);
      CHECK(run->bit_histogram[0] == expected);
      CHECK(run->bit_histogram[31] == expected);
      REQUIRE(run->first_bad.size() == expected);
      for (const BadWord& bad : run->first_bad) {
        CHECK(bad.offset == 4096);
        CHECK((bad.actual ^ bad.expected) == 0x80000001u);
        CHECK(bad.reread == (transient ? bad.expected : bad.actual));
      }
    }
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): exact-mode GEMM and memory reports agree bit for bit with Vulkan",
          "[cuda_on_cpu]") {
  // Exact mode: every partial sum is an integer below 2^24, so any order of the same products
  // gives the same bits; the fingerprints of both backends must be equal. Random mode and
  // attention need not agree (docs/cuda.md): the kernels round in different orders and places,
  // and expf is not Vulkan's exp.
  ComputeDevice& vulkan = testing::vulkan_device();
  CudaOnCpuDevice simt(false), wmma(true);
  for (const Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const ProbeSpec spec = gemm_spec({65, 33, 100}, dtype, Mode::exact, 21);
    const ProbeResult on_vulkan = run_probe(vulkan, spec, goldens());
    INFO(describe(on_vulkan));
    REQUIRE(on_vulkan.status == RunStatus::pass);
    for (ComputeDevice* device : {static_cast<ComputeDevice*>(&simt), static_cast<ComputeDevice*>(&wmma)}) {
      const ProbeResult on_cpu = run_probe(*device, spec, goldens());
      INFO(describe(on_cpu));
      REQUIRE(on_cpu.status == RunStatus::pass);
      CHECK(on_cpu.fingerprint == on_vulkan.fingerprint);
    }
  }
  MemoryLaunch launch;
  launch.bytes = 4100;
  launch.seed = 5;
  // The computed patterns only: Vulkan's shader draws its random words four per Philox call, the
  // CUDA kernel one (word 0) per call, so random and moving-inversion words differ by design.
  launch.patterns = {MemoryPattern::walking_ones, MemoryPattern::walking_zeros, MemoryPattern::own_address};
  launch.inject.enabled = true;
  launch.inject.element = 3;
  launch.inject.xor_mask = 0x10u;
  auto on_vulkan = vulkan.run_memory(launch);
  auto on_cpu = simt.run_memory(launch);
  REQUIRE(on_vulkan.ok());
  REQUIRE(on_cpu.ok());
  CHECK(on_cpu->bad_words == on_vulkan->bad_words);
  CHECK(std::equal(std::begin(on_cpu->bit_histogram), std::end(on_cpu->bit_histogram),
                   std::begin(on_vulkan->bit_histogram)));
  REQUIRE(on_cpu->first_bad.size() == on_vulkan->first_bad.size());
  for (std::size_t i = 0; i < on_cpu->first_bad.size(); ++i) {
    CHECK(on_cpu->first_bad[i].offset == on_vulkan->first_bad[i].offset);
    CHECK(on_cpu->first_bad[i].expected == on_vulkan->first_bad[i].expected);
    CHECK(on_cpu->first_bad[i].actual == on_vulkan->first_bad[i].actual);
  }
}

TEST_CASE("cuda kernels on a CPU (not the hardware): launch errors and kernel faults are reported, not run",
          "[cuda_on_cpu]") {
  ck::GemmParams params{};
  auto wrong_size = cpu::launch(ck::k_fn_gemm_simt, {1, 1, 1}, {16, 16, 1}, 0, ck::FillParams{});
  REQUIRE_FALSE(wrong_size.ok());
  CHECK(wrong_size.error().kind == ErrorKind::invalid_argument);
  CHECK_FALSE(cpu::launch("substrate_nonesuch", {1, 1, 1}, {1, 1, 1}, 0, params).ok());
  CHECK_FALSE(cpu::launch(ck::k_fn_attention, {1, 1, 1}, {128, 1, 1}, cpu::k_dynamic_smem_bytes + 4, params).ok());
  // The wmma kernel on 100 threads: its fourth warp has 4 lanes, and a warp collective needs 32.
  std::vector<std::uint16_t> a(64 * 16), b(16 * 64);
  std::vector<std::uint32_t> c(64 * 64);
  params.a = cpu::device_pointer(a.data());
  params.b = cpu::device_pointer(b.data());
  params.c = cpu::device_pointer(c.data());
  params.m = params.n = 64;
  params.k = 16;
  params.dtype = ck::dtype_f16;
  auto partial = cpu::launch(ck::k_fn_gemm_wmma_f16, {1, 1, 1}, {100, 1, 1}, 0, params);
  REQUIRE_FALSE(partial.ok());
  INFO(partial.error().message);
  CHECK(partial.error().kind == ErrorKind::device_error);
  CHECK(partial.error().message.find("32 lanes") != std::string::npos);
  CHECK(cpu::launch(ck::k_fn_gemm_wmma_f16, {1, 1, 1}, {128, 1, 1}, 0, params).ok());
}
