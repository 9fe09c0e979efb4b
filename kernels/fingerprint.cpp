#include "kernels/fingerprint.hpp"

#include <cstdio>

namespace substrate {

std::string fingerprint(std::span<const std::uint32_t> words) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (std::uint32_t word : words) {
    for (int byte = 0; byte < 4; ++byte) {
      hash ^= (word >> (8 * byte)) & 0xFFu;
      hash *= 0x100000001b3ull;
    }
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace substrate
