#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "probes/diagnosis/npy.hpp"

using namespace substrate;

TEST_CASE("dump: npy round trip keeps every bit, shape and dtype", "[unit]") {
  const std::vector<float> f32{
      1.5f, -0.0f, std::numeric_limits<float>::denorm_min(), INFINITY, std::bit_cast<float>(0x7fc00001u), 3.0e38f};
  auto bytes = npy::encode_f32({2, 3}, f32);
  REQUIRE(bytes.ok());
  // Format 1.0: magic, version 1.0, preamble padded to 64 bytes, newline-terminated header.
  CHECK(bytes->compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  const std::size_t header = static_cast<unsigned char>((*bytes)[8]) | static_cast<unsigned char>((*bytes)[9]) << 8;
  CHECK((10 + header) % 64 == 0);
  CHECK((*bytes)[10 + header - 1] == '\n');
  CHECK(bytes->find("'descr': '<f4'") != std::string::npos);
  CHECK(bytes->find("'shape': (2, 3)") != std::string::npos);
  auto back = npy::decode(*bytes, "x.npy");
  REQUIRE(back.ok());
  CHECK(back->type == npy::ElementType::f32);
  CHECK(back->shape == std::vector<std::uint64_t>{2, 3});
  for (std::size_t i = 0; i < f32.size(); ++i) {
    CHECK(std::bit_cast<std::uint32_t>(static_cast<float>(back->values[i])) == std::bit_cast<std::uint32_t>(f32[i]));
  }
  const std::vector<double> f64{0.1, -1e-310, 1e308};
  auto bytes64 = npy::encode_f64({3}, f64);
  REQUIRE(bytes64.ok());
  CHECK(bytes64->find("'shape': (3,)") != std::string::npos);
  auto back64 = npy::decode(*bytes64, "y.npy");
  REQUIRE(back64.ok());
  CHECK(back64->type == npy::ElementType::f64);
  for (std::size_t i = 0; i < f64.size(); ++i) {
    CHECK(std::bit_cast<std::uint64_t>(back64->values[i]) == std::bit_cast<std::uint64_t>(f64[i]));
  }
  CHECK_FALSE(npy::encode_f32({2, 2}, f32).ok());  // 4 elements declared, 6 given
}

TEST_CASE("dump: npy reader rejects broken files with the reason", "[unit]") {
  auto good = npy::encode_f32({4, 4}, std::vector<float>(16, 1.0f));
  REQUIRE(good.ok());
  auto reason = [](const std::string& bytes) {
    auto decoded = npy::decode(bytes, "f.npy");
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.error().kind == ErrorKind::corrupt);
    return decoded.error().message;
  };
  CHECK_THAT(reason(""), Catch::Contains("empty"));
  CHECK_THAT(reason("hello world, not numpy"), Catch::Contains("magic"));
  CHECK_THAT(reason(good->substr(0, good->size() - 3)), Catch::Contains("truncated payload"));
  CHECK_THAT(reason(*good + "xxxx"), Catch::Contains("oversized payload"));
  CHECK_THAT(reason(good->substr(0, 40)), Catch::Contains("truncated header"));
  std::string big_endian = *good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  CHECK_THAT(reason(big_endian), Catch::Contains("unsupported dtype '>f4'"));
  std::string ints = *good;
  ints.replace(ints.find("<f4"), 3, "<i4");
  CHECK_THAT(reason(ints), Catch::Contains("unsupported dtype"));
  std::string fortran = *good;
  fortran.replace(fortran.find("False"), 5, "True ");
  CHECK_THAT(reason(fortran), Catch::Contains("Fortran"));
  std::string garbled = *good;
  garbled.replace(garbled.find("'shape'"), 7, "'shapf'");
  CHECK_THAT(reason(garbled), Catch::Contains("unexpected key"));
  std::string version = *good;
  version[6] = 9;
  CHECK_THAT(reason(version), Catch::Contains("version"));

  auto missing = npy::read_file("/nonexistent/dir/x.npy");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == ErrorKind::io_error);
}
