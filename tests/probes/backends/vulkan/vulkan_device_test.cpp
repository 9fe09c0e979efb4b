#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "kernels/generator.hpp"
#include "probes/core/check.hpp"
#include "probes/core/registry.hpp"
#include "tests/support/test_device.hpp"

using namespace substrate;
using substrate::testing::vulkan_device;

namespace {

ProbeSpec gemm_spec(Dtype dtype, Mode mode, GemmShape shape, std::uint64_t seed = 1) {
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.dtype = dtype;
  spec.mode = mode;
  spec.gemm = shape;
  spec.seed = seed;
  return spec;
}

ProbeSpec attention_spec(Dtype dtype, AttentionShape shape, std::uint64_t seed) {
  ProbeSpec spec;
  spec.probe = "attention";
  spec.dtype = dtype;
  spec.mode = Mode::random;
  spec.attention = shape;
  spec.seed = seed;
  return spec;
}

GoldenCache& goldens() {
  static GoldenCache cache;
  return cache;
}

}  // namespace

TEST_CASE("vulkan: device generator is bit-identical to the C++ generator", "[vulkan]") {
  ComputeDevice& device = vulkan_device();
  // Multiples of 4 take fill.comp's one-call-per-four path, the others its per-element path;
  // 4294967293 crosses the carry into the index's high word, 4093 words end mid-quad.
  for (std::uint64_t first : {0ull, 4294967000ull, 123456789012ull, 5ull, 4294967293ull}) {
    for (std::uint32_t stream : {1u, 7u}) {
      const std::uint32_t count = first % 2 == 0 ? 4096 : 4093;
      auto words = device.generate_raw(0xDEADBEEFCAFEull, stream, first, count);
      REQUIRE(words.ok());
      REQUIRE(words.value().size() == count);
      for (std::uint32_t i = 0; i < count; ++i) {
        REQUIRE(words.value()[i] == gen::random_bits(0xDEADBEEFCAFEull, stream, first + i));
      }
    }
  }
}

TEST_CASE("vulkan: exact-mode gemm is bit-exact for tile multiples and odd shapes", "[vulkan]") {
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (GemmShape shape :
         {GemmShape{64, 64, 64}, GemmShape{17, 33, 45}, GemmShape{1, 100, 7}, GemmShape{48, 5, 300}}) {
      const ProbeResult result = run_probe(vulkan_device(), gemm_spec(dtype, Mode::exact, shape), goldens());
      INFO(spec_key(result.spec) << " " << result.error);
      REQUIRE(result.status == RunStatus::pass);
      CHECK(result.check.mismatched == 0);
      CHECK(result.check.checked == std::uint64_t{shape.m} * shape.n);
    }
  }
}

TEST_CASE("vulkan: random-mode gemm stays far inside the gamma_K bound", "[vulkan]") {
  for (Dtype dtype : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      const ProbeResult result =
          run_probe(vulkan_device(), gemm_spec(dtype, Mode::random, {40, 56, 200}, seed), goldens());
      INFO(spec_key(result.spec) << " seed " << seed);
      REQUIRE(result.status == RunStatus::pass);
      CHECK(result.check.budget_used > 0.0);
      CHECK(result.check.budget_used < 0.25);
    }
  }
}

TEST_CASE("vulkan: every injected bit of an exact-mode output is detected at the right element", "[vulkan]") {
  for (Dtype dtype : {Dtype::f32, Dtype::f16}) {
    for (int bit = 0; bit < 32; ++bit) {
      ProbeSpec spec = gemm_spec(dtype, Mode::exact, {24, 40, 32});
      spec.inject = {true, 7 * 40 + 11, 1u << bit, false};
      const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
      INFO(to_string(dtype) << " bit " << bit);
      REQUIRE(result.status == RunStatus::fail);
      REQUIRE(result.check.mismatched == 1);
      CHECK(result.check.first_mismatches[0].row == 7);
      CHECK(result.check.first_mismatches[0].col == 11);
      CHECK(result.check.first_mismatches[0].xor_bits == (1u << bit));
      CHECK(result.check.flipped_bits[bit] == 1);
    }
  }
}

TEST_CASE("vulkan: random-mode gemm detects exponent and top mantissa flips", "[vulkan]") {
  for (int bit = 16; bit <= 30; ++bit) {
    ProbeSpec spec = gemm_spec(Dtype::f32, Mode::random, {16, 16, 64});
    spec.inject = {true, 100, 1u << bit, false};
    const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
    INFO("bit " << bit);
    REQUIRE(result.status == RunStatus::fail);
    CHECK(result.check.first_mismatches.at(0).index == 100);
  }
}

TEST_CASE("vulkan: fingerprints repeat run to run and change with a flipped bit", "[vulkan]") {
  const ProbeSpec spec = gemm_spec(Dtype::f32, Mode::random, {32, 32, 96});
  const std::string first = run_probe(vulkan_device(), spec, goldens()).fingerprint;
  for (int run = 0; run < 3; ++run) CHECK(run_probe(vulkan_device(), spec, goldens()).fingerprint == first);
  ProbeSpec drill = spec;
  drill.inject = {true, 5, 1u, false};  // the lowest mantissa bit: inside the bound, caught by the fingerprint
  const ProbeResult flipped = run_probe(vulkan_device(), drill, goldens());
  CHECK(flipped.fingerprint != first);
}

TEST_CASE("vulkan: attention passes within its derived bound across shapes and seeds", "[vulkan]") {
  const std::vector<AttentionShape> shapes{{32, 2, 64, true}, {40, 3, 128, false}, {7, 1, 16, true}};
  for (Dtype dtype : {Dtype::f32, Dtype::f16}) {
    for (const AttentionShape& shape : shapes) {
      for (std::uint64_t seed : {1u, 2u}) {
        const ProbeResult result = run_probe(vulkan_device(), attention_spec(dtype, shape, seed), goldens());
        INFO(spec_key(result.spec) << " seed " << seed << " " << result.error);
        REQUIRE(result.status == RunStatus::pass);
        CHECK(result.check.budget_used < 0.5);
        CHECK(result.fingerprint ==
              run_probe(vulkan_device(), attention_spec(dtype, shape, seed), goldens()).fingerprint);
      }
    }
  }
}

TEST_CASE("vulkan: attention detects exponent and high mantissa flips at the right position", "[vulkan]") {
  for (int bit : {18, 20, 22, 23, 25, 27, 30}) {
    ProbeSpec spec = attention_spec(Dtype::f32, {16, 2, 64, true}, 3);
    spec.inject = {true, 64 * 9 + 5, 1u << bit, false};
    const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
    INFO("bit " << bit);
    REQUIRE(result.status == RunStatus::fail);
    CHECK(result.check.first_mismatches.at(0).row == 9);
    CHECK(result.check.first_mismatches.at(0).col == 5);
  }
}

TEST_CASE("vulkan: memory probe passes clean and reports bandwidth", "[vulkan]") {
  ProbeSpec spec;
  spec.probe = "memory";
  spec.memory = {1.0, 1u << 20};
  const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
  INFO(result.error);
  REQUIRE(result.status == RunStatus::pass);
  REQUIRE(result.memory);
  CHECK(result.memory->bytes_tested == (1u << 20));
  CHECK(result.memory->bandwidth_bytes_per_second > 0);
  CHECK(result.memory->retention_bytes > 0);
}

TEST_CASE("vulkan: memory probe locates a stored flip and tells it from a transient read", "[vulkan]") {
  ProbeSpec spec;
  spec.probe = "memory";
  spec.memory = {1.0, 1u << 20};
  spec.inject = {true, 4097, 1u << 13, false};
  ProbeResult stored = run_probe(vulkan_device(), spec, goldens());
  REQUIRE(stored.status == RunStatus::fail);
  REQUIRE_FALSE(stored.memory->first_bad.empty());
  for (const BadWord& bad : stored.memory->first_bad) {
    CHECK(bad.offset == 4097 * 4);
    CHECK((bad.expected ^ bad.actual) == (1u << 13));
    CHECK(std::string(persistence(bad)) == "stored");
  }
  CHECK(stored.memory->flipped_bits[13] == stored.memory->bad_words);

  spec.inject.transient = true;
  ProbeResult transient = run_probe(vulkan_device(), spec, goldens());
  REQUIRE(transient.status == RunStatus::fail);
  for (const BadWord& bad : transient.memory->first_bad) CHECK(std::string(persistence(bad)) == "transient");
}

TEST_CASE("vulkan: memory probe checks the words past the last full uvec4 and counts every flipped bit", "[vulkan]") {
  // 16387 words: four-word blocks cover 16384, the last three take the scalar tail path.
  constexpr std::uint64_t words = 16387;
  for (std::uint64_t word : {std::uint64_t{5}, words - 1}) {
    ProbeSpec spec;
    spec.probe = "memory";
    spec.memory = {1.0, words * 4};
    spec.inject = {true, word, (1u << 2) | (1u << 31), false};
    const ProbeResult result = run_probe(vulkan_device(), spec, goldens());
    INFO("word " << word << " " << result.error);
    REQUIRE(result.status == RunStatus::fail);
    REQUIRE_FALSE(result.memory->first_bad.empty());
    for (const BadWord& bad : result.memory->first_bad) {
      CHECK(bad.offset == word * 4);
      CHECK((bad.expected ^ bad.actual) == ((1u << 2) | (1u << 31)));
    }
    CHECK(result.memory->flipped_bits[2] == result.memory->bad_words);
    CHECK(result.memory->flipped_bits[31] == result.memory->bad_words);
    CHECK(result.memory->flipped_bits[3] == 0);
  }
}

// Issue 19: each run of 32 invocations walks its own contiguous block (64 uvec4s per invocation:
// 2048 per block here, four 256-invocation groups for 65,536 uvec4s), then invocation 0 takes the
// three tail words. A stored flip at the first and last word of blocks, of groups, of the last
// full uvec4 and of the tail is found at that word, so no word falls between two blocks.
TEST_CASE("vulkan: memory passes visit every word at block, group and tail edges", "[vulkan]") {
  constexpr std::uint64_t words = 4 * 65536 + 3;
  constexpr std::uint64_t block = 4 * 2048;
  for (std::uint64_t word : {std::uint64_t{0}, std::uint64_t{3}, block - 1, block, 2 * block + 5, 16 * block - 1,
                             16 * block, 31 * block + 7, 32 * block - 4, words - 4, words - 3, words - 1}) {
    MemoryLaunch launch;
    launch.bytes = words * 4;
    launch.seed = 7;
    launch.patterns = {MemoryPattern::walking_ones};
    launch.inject = {true, word, 1u << 9, false};
    auto run = vulkan_device().run_memory(launch);
    INFO("word " << word);
    REQUIRE(run.ok());
    CHECK(run->bad_words == 1);
    REQUIRE(run->first_bad.size() == 1);
    CHECK(run->first_bad[0].offset == word * 4);
  }
}

// The passes are chained (verify one stage, write the next), and each stage must still be read
// back on its own: a stored flip (put in as each pattern is first written) is reported once per
// pattern, under that pattern; a transient one (put in on every read) once per stage, moving
// inversions having three (P, ~P, P).
TEST_CASE("vulkan: a chained memory run verifies every pattern's own stage", "[vulkan]") {
  const std::vector<MemoryPattern> all{MemoryPattern::walking_ones, MemoryPattern::walking_zeros,
                                       MemoryPattern::own_address, MemoryPattern::moving_inversions,
                                       MemoryPattern::random};
  for (const bool transient : {false, true}) {
    MemoryLaunch launch;
    launch.bytes = 1u << 16;
    launch.seed = 3;
    launch.patterns = all;
    launch.inject = {true, 1234, 1u << 30, transient};
    auto run = vulkan_device().run_memory(launch);
    INFO("transient " << transient);
    REQUIRE(run.ok());
    CHECK(run->bad_words == (transient ? 7u : 5u));
    CHECK(run->bit_histogram[30] == run->bad_words);
    std::map<MemoryPattern, int> reports;
    for (const BadWord& bad : run->first_bad) {
      CHECK(bad.offset == 1234 * 4);
      CHECK((bad.expected ^ bad.actual) == (1u << 30));
      ++reports[bad.pattern];
    }
    for (MemoryPattern pattern : all) {
      INFO(to_string(pattern));
      CHECK(reports[pattern] == (transient && pattern == MemoryPattern::moving_inversions ? 3 : 1));
    }
  }
}

TEST_CASE("vulkan: the retention block is verified, not rewritten, on later calls", "[vulkan]") {
  ComputeDevice& device = vulkan_device();
  auto first = device.check_retention(4096, 42);
  REQUIRE(first.ok());
  auto later = device.check_retention(4096, 42);
  REQUIRE(later.ok());
  CHECK(later->bad_words == 0);
  CHECK(later->age_seconds >= first->age_seconds);
  CHECK_FALSE(device.check_retention(4095, 42).ok());
}

// Issue 18: each result states the lowest bit whose flip is detected at each of its guaranteed
// elements. Over every accepted shape class (exact and random GEMM across K and dtypes, causal and
// full attention across head_dim up to where the attention bound's second-order terms matter), inject that bit and the
// sign bit at the hardest guaranteed element (the smallest |golden| relative to its bound) and at the first one: all
// are detected.
TEST_CASE("vulkan: a flip of the stated guaranteed bit is detected in every accepted shape class", "[vulkan]") {
  const std::vector<ProbeSpec> specs{
      gemm_spec(Dtype::f32, Mode::exact, {16, 16, 16}),   gemm_spec(Dtype::f16, Mode::exact, {8, 24, 40}),
      gemm_spec(Dtype::bf16, Mode::exact, {4, 4, 4096}),  gemm_spec(Dtype::f32, Mode::exact, {2, 2, 100000}),
      gemm_spec(Dtype::f32, Mode::random, {16, 16, 1}),   gemm_spec(Dtype::f32, Mode::random, {16, 16, 3}),
      gemm_spec(Dtype::f32, Mode::random, {16, 16, 256}), gemm_spec(Dtype::f16, Mode::random, {8, 8, 1024}),
      gemm_spec(Dtype::bf16, Mode::random, {8, 8, 2048}), attention_spec(Dtype::f32, {64, 2, 64, true}, 1),
      attention_spec(Dtype::f16, {32, 2, 128, false}, 2), attention_spec(Dtype::f32, {16, 1, 1, true}, 3),
      attention_spec(Dtype::f32, {8, 1, 512, false}, 4),  attention_spec(Dtype::f32, {2, 1, 4096, false}, 1),
      attention_spec(Dtype::f16, {4, 1, 2048, true}, 6)};
  for (const ProbeSpec& spec : specs) {
    const ProbeResult clean = run_probe(vulkan_device(), spec, goldens(), true);
    INFO(spec_key(spec) << " " << clean.error);
    REQUIRE(clean.status == RunStatus::pass);
    const int bit = clean.check.guaranteed_bit;
    CHECK(bit <= (spec.mode == Mode::exact ? 0 : 23));
    const golden::Reference& golden = *clean.tensors->golden;
    std::uint64_t hardest = golden.value.size(), first = golden.value.size();
    double hardest_margin = INFINITY;
    for (std::uint64_t i = 0; i < golden.value.size(); ++i) {
      const double b = spec.mode == Mode::exact ? 0.0 : golden.bound[i];
      if (guaranteed_bit(golden.value[i], b) > 23) continue;
      if (first == golden.value.size()) first = i;
      const double margin = b > 0.0 ? std::fabs(golden.value[i]) / b : std::fabs(golden.value[i]);
      if (margin < hardest_margin) hardest_margin = margin, hardest = i;
    }
    REQUIRE(first < golden.value.size());
    for (std::uint64_t element : {first, hardest}) {
      for (int flip : {bit, 31}) {
        ProbeSpec drill = spec;
        drill.inject = {true, element, 1u << flip, false};
        const ProbeResult result = run_probe(vulkan_device(), drill, goldens());
        INFO("element " << element << " bit " << flip);
        CHECK(result.status == RunStatus::fail);
      }
    }
  }
}

// Issue 18: fault models beyond single bits travel the kernels' own injection path (GLSL
// inject_hits): exactly the pattern's elements are corrupted and found, in GEMM and attention.
TEST_CASE("vulkan: drill patterns corrupt exactly a warp, a stripe or a lane", "[vulkan]") {
  struct Case {
    ProbeSpec spec;
    std::string drill;
    std::uint64_t expected;
  };
  const std::vector<Case> cases{
      {gemm_spec(Dtype::f32, Mode::exact, {64, 64, 16}), "bit=0,element=64,count=32", 32},
      {gemm_spec(Dtype::f32, Mode::exact, {64, 64, 16}), "bit=0,element=5,stride=32,count=all", 128},
      {gemm_spec(Dtype::f16, Mode::exact, {48, 40, 8}), "bit=7,bit=12,element=3,stride=256,count=all", 8},
      {attention_spec(Dtype::f32, {16, 2, 64, true}, 5), "bit=30,element=17,stride=32,count=all", 64},
  };
  for (const Case& c : cases) {
    ProbeSpec drill = c.spec;
    auto inject = parse_injection(c.drill, 0);
    REQUIRE(inject.ok());
    drill.inject = *inject;
    const ProbeResult result = run_probe(vulkan_device(), drill, goldens());
    INFO(spec_key(drill) << " --inject " << c.drill << ": " << result.error);
    REQUIRE(result.status == RunStatus::fail);
    CHECK(result.check.mismatched == c.expected);
    for (const Mismatch& m : result.check.first_mismatches) {
      CHECK(injection_hits(drill.inject, m.index));
      // Exact mode: the word differs by the mask alone (random mode adds healthy rounding).
      if (drill.mode == Mode::exact) CHECK(m.xor_bits == drill.inject.xor_mask);
    }
  }
}

TEST_CASE("vulkan: lavapipe declares round-to-nearest and reports u = 2^-24 (issue 18, finding 4)", "[vulkan]") {
  // lavapipe reports shaderRoundingModeRTEFloat32, so the RTE modules run; a device without it
  // would report 2^-23 and the probes widen their bounds by the ratio.
  GemmLaunch gemm;
  gemm.shape = {4, 4, 4};
  gemm.mode = Mode::random;
  auto run = vulkan_device().run_gemm(gemm);
  REQUIRE(run.ok());
  CHECK(run->accumulation_unit_roundoff == 0x1p-24);
  AttentionLaunch attention;
  attention.shape = {4, 1, 8, true};
  auto attention_run = vulkan_device().run_attention(attention);
  REQUIRE(attention_run.ok());
  CHECK(attention_run->accumulation_unit_roundoff == 0x1p-24);
}
