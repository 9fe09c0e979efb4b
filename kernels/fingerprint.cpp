#include "kernels/fingerprint.hpp"

#include <cstdio>

namespace substrate {

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t hash = k_fnv1a64_basis;
  for (unsigned char c : bytes) hash = fnv1a64_byte(hash, c);
  return hash;
}

std::string fingerprint(std::span<const std::uint32_t> words) {
  std::uint64_t hash = k_fnv1a64_basis;
  for (std::uint32_t word : words) hash = fnv1a64_word(hash, word);
  return fingerprint_text(hash);
}

std::string fingerprint_text(std::uint64_t hash) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace substrate
