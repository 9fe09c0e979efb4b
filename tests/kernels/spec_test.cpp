#include <catch2/catch.hpp>

#include "kernels/spec.hpp"
#include "probes/core/registry.hpp"

using namespace substrate;

TEST_CASE("spec: injections parse bits, positions and transient", "[unit]") {
  auto inject = parse_injection("bit=30,row=3,col=5", 100);
  REQUIRE(inject.ok());
  CHECK(inject->element == 305);
  CHECK(inject->xor_mask == (1u << 30));
  inject = parse_injection("bit=0,bit=31,element=7,transient", 10);
  REQUIRE(inject.ok());
  CHECK(inject->xor_mask == 0x80000001u);
  CHECK(inject->element == 7);
  CHECK(inject->transient);
}

TEST_CASE("spec: malformed injections name the problem", "[unit]") {
  CHECK(parse_injection("", 10).error().message.find("bit=N") != std::string::npos);
  CHECK(parse_injection("bit=32", 10).error().message.find("0..31") != std::string::npos);
  CHECK(parse_injection("bit=x", 10).error().message.find("integer") != std::string::npos);
  CHECK(parse_injection("bit=1,colour=2", 10).error().message.find("unknown key") != std::string::npos);
  CHECK(parse_injection("bit=1,col=10", 10).error().message.find("outside") != std::string::npos);
  CHECK(parse_injection("bit=1,element=2,row=1", 10).error().message.find("either") != std::string::npos);
}

TEST_CASE("spec: keys name probe, dtype, mode and shape but not the seed", "[unit]") {
  ProbeSpec spec;
  spec.probe = "gemm";
  spec.dtype = Dtype::f16;
  spec.mode = Mode::random;
  spec.gemm = {8, 16, 32};
  spec.seed = 99;
  CHECK(spec_key(spec) == "gemm/f16/random/8x16x32");
}

TEST_CASE("spec: a row past the output is refused, never wrapped onto another element (issue 18)", "[unit]") {
  // 2^60 * 16 + 3 wraps to 3 in 64 bits.
  auto wrapped = parse_injection("bit=30,row=1152921504606846976,col=3", 16);
  REQUIRE_FALSE(wrapped.ok());
  CHECK(wrapped.error().message.find("row 1152921504606846976 is outside the output") != std::string::npos);
  auto last = parse_injection("bit=30,row=15,col=15", 16);
  REQUIRE(last.ok());
  CHECK(last->element == 255);
}

// Issue 18: fault models beyond single bits. One drill corrupts `count` elements `stride` apart.
TEST_CASE("spec: drill patterns: a warp, a stripe, a stuck lane", "[unit]") {
  auto warp = parse_injection("bit=30,element=64,count=32", 64);
  REQUIRE(warp.ok());
  CHECK(warp->count == 32);
  CHECK(warp->stride == 1);
  CHECK(is_pattern(*warp));
  CHECK_FALSE(injection_hits(*warp, 63));
  CHECK(injection_hits(*warp, 64));
  CHECK(injection_hits(*warp, 95));
  CHECK_FALSE(injection_hits(*warp, 96));

  auto lane = parse_injection("bit=3,bit=30,row=0,col=5,stride=32,count=all", 64);
  REQUIRE(lane.ok());
  CHECK(lane->count == k_inject_to_end);
  CHECK(lane->xor_mask == ((1u << 3) | (1u << 30)));
  for (std::uint64_t i : {5ull, 37ull, 32ull * 1000000 + 5}) CHECK(injection_hits(*lane, i));
  for (std::uint64_t i : {4ull, 6ull, 36ull, 38ull}) CHECK_FALSE(injection_hits(*lane, i));

  auto single = parse_injection("bit=1,element=9", 16);
  REQUIRE(single.ok());
  CHECK_FALSE(is_pattern(*single));
  CHECK(injection_hits(*single, 9));
  CHECK_FALSE(injection_hits(*single, 10));
  Injection off = *single;
  off.enabled = false;
  CHECK_FALSE(injection_hits(off, 9));

  CHECK_THAT(parse_injection("bit=1,count=0", 16).error().message, Catch::Contains("count must be at least 1"));
  CHECK_THAT(parse_injection("bit=1,count=2,stride=0", 16).error().message,
             Catch::Contains("stride must be at least 1"));
  CHECK_THAT(parse_injection("bit=1,stride=4", 16).error().message, Catch::Contains("stride needs count"));
  CHECK_THAT(parse_injection("bit=1,count=many", 16).error().message, Catch::Contains("non-negative integer"));
}

TEST_CASE("spec: a drill pattern must fit its output unless it runs to the end", "[unit]") {
  Injection inject{true, 224, 1u << 30, false};
  inject.count = 32;
  CHECK(check_injection_range(inject, 256, "gemm"));
  inject.element = 225;
  const auto past = check_injection_range(inject, 256, "gemm");
  REQUIRE_FALSE(past);
  CHECK_THAT(past.error().message, Catch::Contains("run past the output (256 elements)"));
  inject.count = k_inject_to_end;
  inject.stride = 32;
  CHECK(check_injection_range(inject, 256, "gemm"));
  inject.element = 256;
  CHECK_THAT(check_injection_range(inject, 256, "gemm").error().message,
             Catch::Contains("injected element 256 is outside the output (256 elements)"));
  // A count and stride whose product overflows 64 bits is past any output, not wrapped.
  inject.element = 0;
  inject.count = 1ull << 40;
  inject.stride = 1ull << 40;
  CHECK_FALSE(check_injection_range(inject, 256, "gemm"));
}
