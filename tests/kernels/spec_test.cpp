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
