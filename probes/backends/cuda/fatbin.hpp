#pragma once
// The kernels of kernels/cuda/kernels.cu as nvcc built them: one fatbin embedded in the binary
// (generated/cuda/fatbin_data.cpp, written by probes/backends/cuda/CMakeLists.txt), and a
// reader of the fatbin container's entry headers so tests and notes can say what it holds.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.hpp"

namespace substrate::cuda {

// The fatbin bytes (starts with the magic 0xBA55ED50).
std::span<const unsigned char> embedded_fatbin();
// What CMake asked nvcc for, e.g. {"sm_75", ..., "sm_121", "compute_121"}.
std::span<const char* const> embedded_fatbin_targets();
// The fallback image: uncompressed PTX for compute_75 declared at PTX ISA 8.0 and checked by
// ptxas at that ISA during the build (cmake/Cuda.cmake), NUL-terminated right after the view.
// Loaded when a driver refuses the fatbin (drivers before R580 cannot load CUDA 13 images).
std::string_view embedded_fallback_ptx();

// The PTX ISA a PTX text declares (its ".version" directive), e.g. "8.0"; empty when absent.
std::string ptx_isa_version(std::string_view ptx);
// The ISA nvcc wrote before the fallback was declared at 8.0, i.e. the ISA of the fatbin's own
// PTX (cmake/CudaPtxIsa.cmake leaves it in a comment), e.g. "9.0"; empty when absent.
std::string native_ptx_isa_version(std::string_view ptx);

struct FatbinEntry {
  enum class Kind { ptx, elf, other };
  Kind kind = Kind::other;
  std::uint32_t arch = 0;  // 75, 80, ..., 121
  std::uint64_t payload_bytes = 0;
  std::string target() const;  // "sm_90" for SASS (ELF), "compute_121" for PTX
};

// Walks the container: a 16-byte header (magic 0xBA55ED50, version, header size, payload size)
// followed by entries, each a header (kind at +0: 1 = PTX, 2 = ELF; header size at +4; payload
// size at +8; architecture at +28) and its payload. Rejects truncated or inconsistent input.
Expected<std::vector<FatbinEntry>> list_fatbin(std::span<const unsigned char> bytes);

}  // namespace substrate::cuda
