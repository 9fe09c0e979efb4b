#pragma once
// The fingerprint oracle's hash: fixed-order kernels write bitwise reproducible outputs, so the
// hash of the output words must match the same device's earlier runs and its identical peers.
// Backends also use it to name their embedded kernel binaries (kernel_build).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace substrate {

// 64-bit FNV-1a (Fowler/Noll/Vo; the offset basis and prime of the 64-bit variant), the one
// implementation of the project: output fingerprints below, the state file's checksum
// (daemon/state_store.hpp). Not cryptographic: it detects accidental change, not forgery.
inline constexpr std::uint64_t k_fnv1a64_basis = 0xcbf29ce484222325ull;
inline constexpr std::uint64_t k_fnv1a64_prime = 0x100000001b3ull;
constexpr std::uint64_t fnv1a64_byte(std::uint64_t hash, std::uint8_t byte) { return (hash ^ byte) * k_fnv1a64_prime; }
// FNV-1a of a 32-bit word's 4 bytes, least significant first (fingerprint's order).
constexpr std::uint64_t fnv1a64_word(std::uint64_t hash, std::uint32_t word) {
  for (int byte = 0; byte < 4; ++byte) hash = fnv1a64_byte(hash, static_cast<std::uint8_t>(word >> (8 * byte)));
  return hash;
}
// FNV-1a of `bytes`.
std::uint64_t fnv1a64(std::string_view bytes);

// 64-bit FNV-1a over the output words, each as its 4 bytes least significant first (the same on
// every host): equal outputs give equal fingerprints, any flipped bit a different one. Returned as
// 16 lower-case hex digits.
std::string fingerprint(std::span<const std::uint32_t> words);
// A fingerprint's text: `hash` as 16 lower-case hex digits.
std::string fingerprint_text(std::uint64_t hash);

}  // namespace substrate
