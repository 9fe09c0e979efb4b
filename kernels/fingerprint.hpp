#pragma once
// The fingerprint oracle's hash: fixed-order kernels write bitwise reproducible outputs, so the
// hash of the output words must match the same device's earlier runs and its identical peers.
// Backends also use it to name their embedded kernel binaries (kernel_build).
#include <cstdint>
#include <span>
#include <string>

namespace substrate {

// 64-bit FNV-1a over the output words: equal outputs give equal fingerprints, any flipped bit a
// different one. Returned as 16 lower-case hex digits.
std::string fingerprint(std::span<const std::uint32_t> words);

}  // namespace substrate
