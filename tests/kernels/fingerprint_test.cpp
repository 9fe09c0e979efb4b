// The project's one FNV-1a: the published 64-bit test vectors, and fingerprints that hash each
// word's bytes least significant first.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "kernels/fingerprint.hpp"

using namespace substrate;

TEST_CASE("fingerprint: FNV-1a 64 matches the reference vectors", "[unit]") {
  // From the FNV reference code's test suite (isthe.com/chongo/tech/comp/fnv).
  CHECK(fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ull);
}

TEST_CASE("fingerprint: output words hash as their little-endian bytes", "[unit]") {
  // "foob" is 0x626f6f66 read least significant byte first.
  const std::vector<std::uint32_t> words{0x626f6f66u};
  CHECK(fingerprint(words) == "dd120e790c2512af");
  CHECK(fnv1a64("foob") == 0xdd120e790c2512afull);
  CHECK(fingerprint(std::vector<std::uint32_t>{}) == "cbf29ce484222325");
  CHECK(fingerprint(std::vector<std::uint32_t>{0x626f6f67u}) != fingerprint(words));
}
