#include <catch2/catch.hpp>

#include "probes/registry.hpp"

using namespace substrate;

TEST_CASE("registry: lists gemm, attention and memory with complete descriptors", "[unit]") {
  const ProbeRegistry& registry = probe_registry();
  for (const char* id : {"gemm", "attention", "memory"}) {
    const ProbeDescriptor* probe = registry.find(id);
    REQUIRE(probe != nullptr);
    CHECK_FALSE(probe->description.empty());
    CHECK_FALSE(probe->kernels.empty());
    CHECK(probe->time_budget_seconds > 0);
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

TEST_CASE("registry: the golden cache computes each golden once", "[unit]") {
  GoldenCache cache(2);
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
}
