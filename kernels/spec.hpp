#pragma once
// What to run: the specification of one probe run. Together with the seed it determines every
// input bit, so a stored spec replays exactly.
#include <cstdint>
#include <optional>
#include <string>

#include "common/expected.hpp"

namespace substrate {

enum class Dtype { f32, f16, bf16 };
enum class Mode { exact, random };

const char* to_string(Dtype dtype);
const char* to_string(Mode mode);
std::optional<Dtype> parse_dtype(const std::string& text);
std::optional<Mode> parse_mode(const std::string& text);
// Bits of the storage format: 32 for f32, 16 for f16 and bf16.
unsigned storage_bits(Dtype dtype);
unsigned mantissa_bits(Dtype dtype);

// A drill: the kernel itself XORs `xor_mask` into output element `element` before writing it,
// so the corruption travels the real readback path. For the memory probe the element is a word
// offset; `transient` corrupts the read instead of the stored word.
//
// Fault patterns (gemm and attention outputs): the mask goes into `count` elements, `stride`
// apart, from `element` on: element + i*stride for i < count. A warp's 32 consecutive outputs
// are count=32; a stripe through every tile, stride = the tile's elements; a stuck lane, the
// same lane of every warp, stride=32 with count=k_inject_to_end. The same rule is written in
// injection_hits (C++), inject_hits (kernels/glsl/generator.glsl) and inject_bits
// (kernels/cuda/kernels.cu).
struct Injection {
  bool enabled = false;
  std::uint64_t element = 0;
  std::uint32_t xor_mask = 0;
  bool transient = false;
  std::uint32_t layer = 0;   // canary probe: the checkpoint layer whose output is corrupted
  std::uint64_t count = 1;   // elements corrupted; k_inject_to_end: to the end of the output
  std::uint64_t stride = 1;  // distance between them, in elements (>= 1)
};

// `count` meaning "every element from `element` on, `stride` apart, to the end of the output".
inline constexpr std::uint64_t k_inject_to_end = UINT64_MAX;

// Whether the drill corrupts output element `index`.
bool injection_hits(const Injection& inject, std::uint64_t index);
// Whether the drill corrupts more than one element (a pattern, not a single element).
inline bool is_pattern(const Injection& inject) { return inject.count != 1; }
// ok when the drill's first element lies in an output of `elements` elements, and with a finite
// count its last one too; otherwise invalid_argument "<probe>: injected element N is outside the
// output (M elements)". `count` and `stride` clipped to the output are what the kernels get.
Status check_injection_range(const Injection& inject, std::uint64_t elements, const std::string& probe);

struct GemmShape {
  std::uint32_t m = 0, n = 0, k = 0;
};

struct AttentionShape {
  std::uint32_t seq_len = 0, heads = 0, head_dim = 0;
  bool causal = true;
};

struct MemoryShape {
  double free_share = 0.0;      // share of the device's free memory to test
  std::uint64_t max_bytes = 0;  // cap on the bytes tested per run
  // Floor: when the share comes to less, a workload holds the memory and the run is skipped
  // (busy) rather than a token region tested.
  std::uint64_t min_bytes = 4;
};

// The canary's tiny decoder stack (probes/canary/canary_probe.cpp).
struct CanaryShape {
  std::uint32_t tokens = 0, d_model = 0, heads = 0, ffn = 0, layers = 0, vocab = 0;
};

struct ProbeSpec {
  std::string probe;  // registry id (probes/core/registry.hpp); the probe reads only its own shape
  Dtype dtype = Dtype::f32;
  Mode mode = Mode::exact;
  std::uint64_t seed = 1;
  GemmShape gemm;
  AttentionShape attention;
  MemoryShape memory;
  CanaryShape canary;
  Injection inject;
};

// Parses a drill description
// "bit=B[,bit=B2...][,element=N | ,row=R,col=C][,count=N|all][,stride=S][,transient][,layer=L]".
// `row_length` converts row/col into an element index. Returns an invalid_argument error naming
// the bad token; a row so large that R*row_length+C does not fit in 64 bits is "outside the
// output" (no wraparound onto another element). Whether the element lies inside a given output
// is the probe's check (it knows the output's size).
Expected<Injection> parse_injection(const std::string& text, std::uint64_t row_length);

}  // namespace substrate
