#include <atomic>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>

#include "probes/core/registry.hpp"
#include "probes/gemm/gemm_probe.hpp"
#include "probes/memory/memory_probe.hpp"

using namespace substrate;

TEST_CASE("registry: lists gemm, attention and memory with complete descriptors", "[unit]") {
  const ProbeRegistry& registry = probe_registry();
  for (const char* id : {"gemm", "attention", "memory"}) {
    const ProbeDescriptor* probe = registry.find(id);
    REQUIRE(probe != nullptr);
    CHECK_FALSE(probe->description.empty());
    CHECK_FALSE(probe->kernels.empty());
    CHECK(probe->default_timeout_seconds > 0);
    CHECK(probe->default_specs);
    CHECK(probe->run);
  }
}

TEST_CASE("registry: rejects a duplicate id", "[unit]") {
  ProbeRegistry registry;
  REQUIRE(registry.add(gemm_probe()).ok());
  const Status again = registry.add(gemm_probe());
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("registered twice") != std::string::npos);
  CHECK(registry.all().size() == 1);
}

TEST_CASE("registry: default specs suit the device class", "[unit]") {
  DeviceInfo cpu, gpu;
  cpu.device_type = "cpu";
  gpu.device_type = "discrete";
  const auto small = gemm_probe().default_specs(cpu);
  const auto large = gemm_probe().default_specs(gpu);
  REQUIRE_FALSE(small.empty());
  CHECK(small[0].gemm.m < large[0].gemm.m);
  CHECK(memory_probe().default_specs(cpu)[0].memory.max_bytes < memory_probe().default_specs(gpu)[0].memory.max_bytes);
}

TEST_CASE("registry: dimension parsing accepts N and AxBxC and names bad input", "[unit]") {
  CHECK(*parse_dimensions("64", 3) == std::vector<std::uint32_t>{64, 64, 64});
  CHECK(*parse_dimensions("8x16x32", 3) == std::vector<std::uint32_t>{8, 16, 32});
  CHECK_FALSE(parse_dimensions("8x16", 3).ok());
  CHECK_FALSE(parse_dimensions("0", 3).ok());
  CHECK_FALSE(parse_dimensions("8xy", 3).ok());
}

TEST_CASE("registry: dimension parsing is as strict as --seed (issue 18, finding 7)", "[unit]") {
  for (const char* loose : {"8x", "8x8x8x", " 8", "+8", "x8", "8xx8", "8 ", "-8", "8x 8x8", "99999999999"}) {
    INFO(loose);
    auto parsed = parse_dimensions(loose, 3);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("is not an integer in 1..1048576") != std::string::npos);
  }
  CHECK(*parse_dimensions("1048576x1x1", 3) == std::vector<std::uint32_t>{1048576, 1, 1});
  CHECK_FALSE(parse_dimensions("1048577", 3).ok());
}

TEST_CASE("registry: the golden cache computes each golden once", "[unit]") {
  GoldenCache cache;
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.gemm = {2, 2, 2};
  int computed = 0;
  auto compute = [&] {
    ++computed;
    return golden::gemm(spec.gemm, Dtype::f32, Mode::exact, 1, 4);
  };
  auto first = cache.get(spec, compute);
  auto second = cache.get(spec, compute);
  CHECK(computed == 1);
  CHECK(first == second);
  spec.seed = 2;
  cache.get(spec, compute);
  CHECK(computed == 2);
  CHECK(cache.hits() == 1);
  CHECK(cache.find(spec) != nullptr);
  spec.seed = 3;
  CHECK(cache.find(spec) == nullptr);
}

TEST_CASE("registry: the golden cache holds at most its bytes and evicts the least recently used", "[unit]") {
  // Exact-mode 4x4 goldens: 16 values, no bound, 128 bytes each; room for two.
  GoldenCache cache(2 * 128 + 64);
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.gemm = {4, 4, 4};
  int computed = 0;
  auto golden_for = [&](std::uint64_t seed) {
    spec.seed = seed;
    return cache.get(spec, [&] {
      ++computed;
      return golden::gemm(spec.gemm, Dtype::f32, Mode::exact, seed, 4);
    });
  };
  golden_for(1);
  golden_for(2);
  CHECK(cache.bytes() == 256);
  golden_for(1);  // 1 is now the most recent, so 2 goes when 3 arrives
  golden_for(3);
  CHECK(computed == 3);
  CHECK(cache.bytes() == 256);
  spec.seed = 1;
  CHECK(cache.find(spec) != nullptr);
  spec.seed = 2;
  CHECK(cache.find(spec) == nullptr);

  // Shrinking evicts down to the new bound, least recent first: 3, since find() just used 1.
  cache.set_max_bytes(128);
  CHECK(cache.bytes() == 128);
  spec.seed = 3;
  CHECK(cache.find(spec) == nullptr);
  spec.seed = 1;
  CHECK(cache.find(spec) != nullptr);

  GoldenCache tiny(64);  // a golden larger than the whole cache is returned but not kept
  spec.seed = 1;
  auto reference = tiny.get(spec, [&] { return golden::gemm(spec.gemm, Dtype::f32, Mode::exact, 1, 4); });
  CHECK(reference->value.size() == 16);
  CHECK(tiny.bytes() == 0);
}

TEST_CASE("registry: a fetched golden is computed once while the caller works and then cached", "[unit]") {
  GoldenCache cache;
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.gemm = {8, 8, 8};
  std::atomic<int> computed = 0;
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id computed_on;
  auto compute = [&] {
    ++computed;
    computed_on = std::this_thread::get_id();
    return golden::gemm(spec.gemm, Dtype::f32, Mode::random, 1, 0);
  };
  ProbeResult cold;
  auto first = GoldenFetch(cache, spec, compute).get(cold);
  CHECK(computed == 1);
  CHECK(computed_on != caller);
  CHECK(cold.golden_seconds > 0);
  ProbeResult warm;
  auto second = GoldenFetch(cache, spec, compute).get(warm);
  CHECK(computed == 1);
  CHECK(first == second);
  CHECK(cache.hits() == 1);

  spec.seed = 9;
  ProbeResult failed;
  GoldenFetch throwing(cache, spec, []() -> golden::Reference { throw std::runtime_error("out of memory"); });
  CHECK_THROWS_WITH(throwing.get(failed), "out of memory");
}
