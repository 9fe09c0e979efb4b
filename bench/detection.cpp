// Detection campaign: injects bit flips through the kernels' own injection path (the shader XORs
// the mask into one output element before writing it) and reports, per bit position, how often
// the golden check and the fingerprint check (against a clean run of the same spec and seed)
// notice, plus whether the golden check names the right element and bits. Also multi-bit flips,
// stuck elements, and the memory probe with stored and transient flips.
//
// Fault models beyond single bits (issue 18; arXiv 2605.04213 found fewer than 40% of corrupting
// events to be single-bit, and corrupted addresses warp-aligned and periodic), each through the
// kernels' own injection path (--inject count/stride): 2- and 3-bit flips in one element, a whole
// warp (32 aligned consecutive outputs), a stripe across tiles (one element every 256), and a
// stuck lane (the same lane of every warp: one element every 32). Per model: detection by the
// golden check and the fingerprint, detection of the flips at or above the result's stated
// guaranteed bit, and localisation as `substrated compare` sees the run (every element outside
// the bound an injected one; every injected element outside it; the pattern named).
//
//   build-bench/bench/bench_detection [--samples 8] [--gemm-size 64] [--attention-size 32x2x32]
//                                     [--memory-size 1M] [--seed 1] [--only gemm,attention,memory]
//                                     [--model-injections 8]
#include <bit>
#include <random>
#include <set>

#include "bench/common.hpp"
#include "kernels/fingerprint.hpp"
#include "probes/core/check.hpp"
#include "probes/diagnosis/compare.hpp"

using namespace substrate;

namespace {

constexpr const char* k_usage =
    "usage: bench_detection [--samples N] [--gemm-size S] [--attention-size S] [--memory-size S] [--seed N]\n"
    "                       [--only gemm,attention,memory] [--model-injections N]\n"
    "  --samples N         injections per bit position per configuration (default 8), also the number of seeds\n"
    "  --gemm-size S       gemm shape as for `substrated probe --size` (default 64)\n"
    "  --attention-size S  attention SEQxHEADSxDIM, causal (default 32x2x32)\n"
    "  --memory-size S     memory probe region (default 1024K)\n"
    "  --model-injections N  injections of each fault model beyond single bits per seed (default 8)\n";

struct Tally {
  int runs = 0;
  int golden = 0;       // golden check failed the run
  int fingerprint = 0;  // fingerprint differs from the clean run's
  int either = 0;
  int located = 0;      // golden named exactly one element, the injected one
  int bits_exact = 0;   // ...and its reported value XOR the clean value is the injected mask
  int xor_field = 0;    // ...and the checker's own xor field (vs fp32 of the golden) is the mask
  int significant = 0;  // ...and the checker's significant xor (bits beyond the bound) is the mask
  int errors = 0;       // the run could not run at all
  void add(const Tally& t) {
    runs += t.runs, golden += t.golden, fingerprint += t.fingerprint, either += t.either;
    located += t.located, bits_exact += t.bits_exact, xor_field += t.xor_field, significant += t.significant,
        errors += t.errors;
  }
};

// A fault model beyond single bits, injected as one --inject pattern with a random bit.
enum class Model { two_bits, three_bits, warp, tile_stripe, stuck_lane };
constexpr Model k_models[] = {Model::two_bits, Model::three_bits, Model::warp, Model::tile_stripe, Model::stuck_lane};
constexpr std::uint64_t k_tile_stride = 256;  // a 16x16 workgroup tile's outputs

const char* model_name(Model m) {
  switch (m) {
    case Model::two_bits:
      return "2-bit flip, one element";
    case Model::three_bits:
      return "3-bit flip, one element";
    case Model::warp:
      return "whole warp (32 aligned outputs)";
    case Model::tile_stripe:
      return "stripe across tiles (every 256th)";
    case Model::stuck_lane:
      return "stuck lane (same lane of every warp)";
  }
  return "?";
}

struct ModelTally {
  int runs = 0, errors = 0;
  int golden = 0, fingerprint = 0, either = 0;
  int guaranteed_runs = 0, guaranteed_golden = 0;  // injections at or above the stated guaranteed bit
  int located = 0;   // golden failed and every element outside the bound is an injected one
  int complete = 0;  // ...and every injected element is outside the bound
  int named = 0;     // ...and compare names the model's pattern
  void add(const ModelTally& t) {
    runs += t.runs, errors += t.errors, golden += t.golden, fingerprint += t.fingerprint, either += t.either;
    guaranteed_runs += t.guaranteed_runs, guaranteed_golden += t.guaranteed_golden;
    located += t.located, complete += t.complete, named += t.named;
  }
};

struct Config {
  std::string probe;
  Dtype dtype;
  Mode mode;
  std::string size;
  std::string label() const {
    const bool has_modes = probe_registry().find(probe)->modes.size() > 1;
    return probe + " " + to_string(dtype) + (has_modes ? std::string(" ") + to_string(mode) : "");
  }
};

struct ConfigResult {
  Config config;
  Tally per_bit[32];
  Tally two_bit, three_bit, stuck_zero, stuck_ones;
  ModelTally models[std::size(k_models)];
  int clean_runs = 0, clean_false_alarms = 0, fingerprint_unstable = 0;
  int stuck_noop = 0;  // stuck value equal to the clean value: nothing to detect
  double max_clean_budget = 0.0;
};

std::string pct(int hit, int of) {
  if (of == 0) return "n/a";
  return bench::fixed(100.0 * hit / of, hit == of || hit == 0 ? 0 : 1);
}

// Clean output words of the spec from a second run on the device (the golden is cached by then).
Expected<std::vector<std::uint32_t>> clean_words(ComputeDevice& device, GoldenCache& goldens, const ProbeSpec& spec) {
  ProbeResult run = run_probe(device, spec, goldens, /*capture_tensors=*/true);
  if (run.status == RunStatus::error) return Error{run.error_kind, run.error};
  return std::move(run.tensors->output_bits);
}

void inject_once(ComputeDevice& device, GoldenCache& goldens, ProbeSpec spec, std::uint64_t element, std::uint32_t mask,
                 const std::string& clean_fp, const std::vector<std::uint32_t>& clean, Tally& tally) {
  spec.inject = Injection{true, element, mask, false};
  ProbeResult r = run_probe(device, spec, goldens);
  ++tally.runs;
  if (r.status == RunStatus::error) {
    ++tally.errors;
    std::cerr << "error: " << spec_key(spec) << " seed " << spec.seed << ": " << r.error << "\n";
    return;
  }
  const bool golden = r.status == RunStatus::fail;
  const bool fp = r.fingerprint != clean_fp;
  tally.golden += golden;
  tally.fingerprint += fp;
  tally.either += golden || fp;
  if (golden && r.check.mismatched == 1 && !r.check.first_mismatches.empty() &&
      r.check.first_mismatches[0].index == element) {
    const Mismatch& m = r.check.first_mismatches[0];
    ++tally.located;
    if ((m.actual_bits ^ clean[element]) == mask) ++tally.bits_exact;
    if (m.xor_bits == mask) ++tally.xor_field;
    if (m.significant_xor_bits == mask) ++tally.significant;
  }
}

// The drill of model `m` on an output of `elements` elements, with `mask`.
Injection model_injection(Model m, std::uint64_t elements, std::uint32_t mask, std::mt19937_64& rng) {
  Injection inject{true, 0, mask, false};
  const auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  switch (m) {
    case Model::two_bits:
    case Model::three_bits:
      inject.element = pick(elements);
      break;
    case Model::warp:
      // An output smaller than a warp is one partial warp.
      inject.element = pick(std::max<std::uint64_t>(1, elements / k_warp_elements)) * k_warp_elements;
      inject.count = std::min(k_warp_elements, elements);
      break;
    case Model::tile_stripe:
      inject.element = pick(std::min(elements, k_tile_stride));
      inject.stride = k_tile_stride;
      inject.count = k_inject_to_end;
      break;
    case Model::stuck_lane:
      inject.element = pick(k_warp_elements);
      inject.stride = k_warp_elements;
      inject.count = k_inject_to_end;
      break;
  }
  return inject;
}

// Whether compare's pattern is the one the model leaves. Where the output's geometry makes two
// names equally true, both count: a warp that is whole rows (rows of 32 or 16) is a row, and a
// stride equal to the row length a column stripe; one element is single_element.
bool pattern_named(Model m, const TensorComparison& t, std::uint64_t cols) {
  const MismatchPattern kind = t.pattern.kind;
  switch (m) {
    case Model::two_bits:
    case Model::three_bits:
      return kind == MismatchPattern::single_element;
    case Model::warp:
      return kind == MismatchPattern::warp_aligned || (kind == MismatchPattern::row && k_warp_elements % cols == 0);
    case Model::tile_stripe:
      return kind == MismatchPattern::periodic || (kind == MismatchPattern::column_stripe && k_tile_stride == cols);
    case Model::stuck_lane:
      return kind == MismatchPattern::periodic || (kind == MismatchPattern::column_stripe && k_warp_elements == cols);
  }
  return false;
}

// One injection of model `m` through the real path, with the run's tensors captured so the
// mismatches are classified as `substrated compare` would classify the run's dump.
void inject_model(ComputeDevice& device, GoldenCache& goldens, ProbeSpec spec, Model m, const ProbeResult& clean,
                  const std::vector<std::uint32_t>& clean_bits, std::mt19937_64& rng, ModelTally& tally) {
  const std::uint64_t elements = clean_bits.size();
  const int nbits = m == Model::two_bits ? 2 : m == Model::three_bits ? 3 : 1;
  std::uint32_t mask = 0;
  while (std::popcount(mask) < nbits) mask |= 1u << (rng() % 32);
  spec.inject = model_injection(m, elements, mask, rng);
  ProbeResult r = run_probe(device, spec, goldens, /*capture_tensors=*/true);
  ++tally.runs;
  if (r.status == RunStatus::error || !r.tensors || !r.tensors->golden) {
    ++tally.errors;
    std::cerr << "error: " << spec_key(spec) << " seed " << spec.seed << " " << model_name(m) << ": " << r.error
              << "\n";
    return;
  }
  const bool golden = r.status == RunStatus::fail;
  const bool fp = r.fingerprint != clean.fingerprint;
  tally.golden += golden;
  tally.fingerprint += fp;
  tally.either += golden || fp;
  const RunTensors& t = *r.tensors;
  // Guaranteed (docs/error-bounds.md): a single-bit flip of bit b at an element whose own
  // guaranteed bit is at most b. Multi-bit flips are outside that derivation (an exponent and a
  // mantissa flip together can nearly cancel), so they are not counted here.
  bool guaranteed = false;
  for (std::uint64_t i = 0; i < elements && nbits == 1 && !guaranteed; ++i) {
    if (!injection_hits(spec.inject, i)) continue;
    const double bound = t.golden->bound.empty() ? 0.0 : t.golden->bound[i];
    guaranteed = guaranteed_bit(t.golden->value[i], bound) <= std::countr_zero(mask);
  }
  if (guaranteed) {
    ++tally.guaranteed_runs;
    tally.guaranteed_golden += golden;
  }
  if (!golden) return;
  npy::Array output{npy::ElementType::f32, t.output_shape, {}}, expected{npy::ElementType::f64, t.output_shape, {}};
  for (std::uint32_t word : t.output_bits) output.values.push_back(std::bit_cast<float>(word));
  expected.values = t.golden->value;
  Tolerance tolerance;
  if (!t.golden->bound.empty()) {
    tolerance.kind = Tolerance::Kind::per_element;
    tolerance.per_element = t.golden->bound;
  }
  auto comparison = compare_arrays("output vs golden", output, expected, tolerance, true);
  if (!comparison) bench::Args::die(comparison.error().message);
  // The same comparison with the injected elements as the clean run wrote them (which passed):
  // what is left outside the bound is not injected (a false location).
  std::uint64_t injected = 0;
  npy::Array healed = output;
  for (std::uint64_t i = 0; i < elements; ++i) {
    if (!injection_hits(spec.inject, i)) continue;
    ++injected;
    healed.values[i] = std::bit_cast<float>(clean_bits[i]);
  }
  auto elsewhere = compare_arrays("output vs golden", healed, expected, tolerance, true);
  if (!elsewhere) bench::Args::die(elsewhere.error().message);
  bool located =
      comparison->mismatched > 0 && elsewhere->mismatched == 0 && comparison->mismatched == r.check.mismatched;
  for (const Mismatch& mm : r.check.first_mismatches) located = located && injection_hits(spec.inject, mm.index);
  if (!located) return;
  ++tally.located;
  if (comparison->mismatched == injected) ++tally.complete;
  if (pattern_named(m, *comparison, comparison->cols)) ++tally.named;
}

ConfigResult run_config(ComputeDevice& device, const Config& config, int samples, int model_injections,
                        std::uint64_t seed0) {
  ConfigResult out;
  out.config = config;
  GoldenCache goldens;
  std::mt19937_64 rng(seed0 * 7919 + std::hash<std::string>{}(config.label()));
  for (int s = 0; s < samples; ++s) {
    ProbeSpec spec = bench::make_spec(config.probe, config.dtype, config.mode, config.size, seed0 + s);
    ProbeResult clean = run_probe(device, spec, goldens);
    ++out.clean_runs;
    if (clean.status != RunStatus::pass) {
      ++out.clean_false_alarms;
      std::cerr << "clean run did not pass: " << spec_key(spec) << " seed " << spec.seed << " "
                << to_string(clean.status) << " " << clean.error << "\n";
      continue;
    }
    out.max_clean_budget = std::max(out.max_clean_budget, clean.check.budget_used);
    auto words = clean_words(device, goldens, spec);
    if (!words) bench::Args::die(words.error().message);
    if (fingerprint(*words) != clean.fingerprint) ++out.fingerprint_unstable;
    const std::uint64_t elements = words->size();
    std::uniform_int_distribution<std::uint64_t> pick(0, elements - 1);
    for (int bit = 0; bit < 32; ++bit) {
      inject_once(device, goldens, spec, pick(rng), 1u << bit, clean.fingerprint, *words, out.per_bit[bit]);
    }
    // Multi-bit: 2 and 3 distinct random bit positions in one element.
    for (int nbits : {2, 3}) {
      std::uint32_t mask = 0;
      while (std::popcount(mask) < nbits) mask |= 1u << (rng() % 32);
      inject_once(device, goldens, spec, pick(rng), mask, clean.fingerprint, *words,
                  nbits == 2 ? out.two_bit : out.three_bit);
    }
    // Stuck element: the word reads 0x00000000 or 0xffffffff whatever was computed.
    for (std::uint32_t stuck : {0u, 0xffffffffu}) {
      const std::uint64_t element = pick(rng);
      const std::uint32_t mask = (*words)[element] ^ stuck;
      if (mask == 0) {
        ++out.stuck_noop;
        continue;
      }
      inject_once(device, goldens, spec, element, mask, clean.fingerprint, *words,
                  stuck == 0 ? out.stuck_zero : out.stuck_ones);
    }
    // Fault models beyond single bits: `injections` of each, random bits and places.
    for (std::size_t i = 0; i < std::size(k_models); ++i) {
      for (int n = 0; n < model_injections; ++n) {
        inject_model(device, goldens, spec, k_models[i], clean, *words, rng, out.models[i]);
      }
    }
    std::cerr << "  " << config.label() << " seed " << spec.seed << " done (load " << bench::load_average() << ")\n";
  }
  return out;
}

struct MemoryResult {
  Tally stored[32], transient[32];
  int persistence_right_stored = 0, persistence_right_transient = 0;
  int clean_runs = 0, clean_false_alarms = 0;
};

void memory_once(ComputeDevice& device, GoldenCache& goldens, const ProbeSpec& base, std::uint64_t word, int bit,
                 bool transient, MemoryResult& out) {
  ProbeSpec spec = base;
  spec.inject = Injection{true, word, 1u << bit, transient};
  ProbeResult r = run_probe(device, spec, goldens);
  Tally& tally = transient ? out.transient[bit] : out.stored[bit];
  ++tally.runs;
  if (r.status == RunStatus::error || !r.memory) {
    ++tally.errors;
    std::cerr << "error: memory word " << word << ": " << r.error << "\n";
    return;
  }
  const bool detected = r.status == RunStatus::fail;
  tally.golden += detected;
  tally.either += detected;
  if (!detected || r.memory->first_bad.empty()) return;
  bool all_right = true, persistence_right = true;
  for (const BadWord& bad : r.memory->first_bad) {
    all_right = all_right && bad.offset == word * 4 && (bad.expected ^ bad.actual) == (1u << bit);
    persistence_right = persistence_right && std::string(persistence(bad)) == (transient ? "transient" : "stored");
  }
  tally.located += all_right;
  tally.bits_exact += all_right;
  if (all_right && persistence_right) (transient ? out.persistence_right_transient : out.persistence_right_stored)++;
}

MemoryResult run_memory(ComputeDevice& device, const std::string& size, int samples, std::uint64_t seed0) {
  MemoryResult out;
  GoldenCache goldens;
  std::mt19937_64 rng(seed0 * 104729);
  for (int s = 0; s < samples; ++s) {
    ProbeSpec spec = bench::make_spec("memory", Dtype::f32, Mode::random, size, seed0 + s);
    ProbeResult clean = run_probe(device, spec, goldens);
    ++out.clean_runs;
    if (clean.status != RunStatus::pass) ++out.clean_false_alarms;
    const std::uint64_t words = spec.memory.max_bytes / 4;
    std::uniform_int_distribution<std::uint64_t> pick(0, words - 1);
    for (int bit = 0; bit < 32; ++bit) {
      for (bool transient : {false, true}) memory_once(device, goldens, spec, pick(rng), bit, transient, out);
    }
    std::cerr << "  memory seed " << spec.seed << " done (load " << bench::load_average() << ")\n";
  }
  return out;
}

// Golden detection of the injections the stated guarantee covers: "100% of 12"; "n/a" for none
// (multi-bit flips are outside the single-bit derivation).
std::string guaranteed_cell(const ModelTally& t) {
  if (t.guaranteed_runs == 0) return "n/a";
  return pct(t.guaranteed_golden, t.guaranteed_runs) + "% of " + std::to_string(t.guaranteed_runs);
}

// "g/f" cell: golden and fingerprint detection percentages.
std::string cell(const Tally& t) { return pct(t.golden, t.runs) + " / " + pct(t.fingerprint, t.runs); }

// Lowest bit L such that the golden check caught every injection at bits L..31.
int golden_floor(const ConfigResult& r) {
  int floor = 32;
  for (int bit = 31; bit >= 0; --bit) {
    if (r.per_bit[bit].runs == 0 || r.per_bit[bit].golden != r.per_bit[bit].runs) break;
    floor = bit;
  }
  return floor;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {}, k_usage);
  const int samples = static_cast<int>(args.get_int("--samples", 8));
  const std::string gemm_size = args.get("--gemm-size", "64");
  const std::string attention_size = args.get("--attention-size", "32x2x32");
  const std::string memory_size = args.get("--memory-size", "1024K");
  const std::uint64_t seed0 = static_cast<std::uint64_t>(args.get_int("--seed", 1));
  const std::string only = args.get("--only", "gemm,attention,memory");
  const int model_injections = static_cast<int>(args.get_int("--model-injections", 8));
  if (samples < 1) bench::Args::die("--samples must be at least 1");
  if (model_injections < 0) bench::Args::die("--model-injections must be at least 0");

  DevicePtr device = bench::first_device();
  const double started = bench::now_seconds();
  std::cout << "## Detection campaign\n\n";
  bench::print_machine(std::cout, device->info(), bench::command_line(argc, argv));
  std::cout << "- shapes: gemm " << gemm_size << ", attention " << attention_size << " causal, memory " << memory_size
            << "; " << samples << " seed(s) per configuration, one injection per bit position per seed\n\n";

  std::vector<Config> configs;
  if (only.find("gemm") != std::string::npos) {
    for (Dtype d : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
      for (Mode m : {Mode::exact, Mode::random}) configs.push_back({"gemm", d, m, gemm_size});
    }
  }
  if (only.find("attention") != std::string::npos) {
    for (Dtype d : {Dtype::f32, Dtype::f16}) configs.push_back({"attention", d, Mode::random, attention_size});
  }
  std::vector<ConfigResult> results;
  for (const Config& c : configs) {
    std::cerr << "running " << c.label() << "\n";
    results.push_back(run_config(*device, c, samples, model_injections, seed0));
  }
  const bool with_memory = only.find("memory") != std::string::npos;
  MemoryResult memory;
  if (with_memory) {
    std::cerr << "running memory\n";
    memory = run_memory(*device, memory_size, samples, seed0);
  }

  // Per-bit table: golden % / fingerprint % per configuration; memory stored / transient.
  std::cout << "### Single-bit flips: detection rate per bit position (golden % / fingerprint %)\n\n| bit |";
  for (const ConfigResult& r : results) std::cout << " " << r.config.label() << " |";
  if (with_memory) std::cout << " memory stored | memory transient |";
  std::cout << "\n|---|";
  for (std::size_t i = 0; i < results.size() + (with_memory ? 2 : 0); ++i) std::cout << "---|";
  std::cout << "\n";
  for (int bit = 31; bit >= 0; --bit) {
    std::cout << "| " << bit << " |";
    for (const ConfigResult& r : results) std::cout << " " << cell(r.per_bit[bit]) << " |";
    if (with_memory) {
      std::cout << " " << pct(memory.stored[bit].golden, memory.stored[bit].runs) << " | "
                << pct(memory.transient[bit].golden, memory.transient[bit].runs) << " |";
    }
    std::cout << "\n";
  }

  std::cout
      << "\n### Summary per configuration\n\n"
         "| configuration | single-bit golden | single-bit fingerprint | golden or fingerprint | golden 100% from bit "
         "| located (element) | located (element + bits vs clean) | checker xor field == mask | significant xor == "
         "mask | 2-bit golden/fp "
         "| 3-bit golden/fp | stuck-at-0 golden/fp | stuck-at-ones golden/fp | clean false alarms | target |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool all_met = true;
  for (const ConfigResult& r : results) {
    Tally single;
    for (const Tally& t : r.per_bit) single.add(t);
    const int floor = golden_floor(r);
    // Targets: exact mode 100% golden at every bit; random mode 100% golden for the sign, exponent
    // and top mantissa bit (22..31), and the fingerprint catching every flip.
    bool met;
    std::string why;
    if (r.config.mode == Mode::exact) {
      met = floor == 0 && r.clean_false_alarms == 0;
      why = met ? "met (golden 100% at all 32 bits)"
                : "missed (golden below 100% at bit " + std::to_string(floor - 1) + ")";
    } else {
      met = floor <= 22 && single.fingerprint == single.runs && r.clean_false_alarms == 0;
      why = std::string(met ? "met" : "missed") + " (golden 100% for bits " + std::to_string(floor) +
            "..31, fingerprint " + pct(single.fingerprint, single.runs) + "%)";
    }
    all_met = all_met && met;
    std::cout << "| " << r.config.label() << " | " << pct(single.golden, single.runs) << "% | "
              << pct(single.fingerprint, single.runs) << "% | " << pct(single.either, single.runs) << "% | " << floor
              << " | " << pct(single.located, single.golden) << "% | " << pct(single.bits_exact, single.golden)
              << "% | " << pct(single.xor_field, single.golden) << "% | " << pct(single.significant, single.golden)
              << "% | " << cell(r.two_bit) << " | " << cell(r.three_bit) << " | " << cell(r.stuck_zero) << " | "
              << cell(r.stuck_ones) << " | " << r.clean_false_alarms << "/" << r.clean_runs << " | " << why << " |\n";
  }
  if (model_injections > 0) {
    std::cout << "\n### Fault models beyond single bits (" << model_injections
              << " injection(s) of each per seed, random bit positions and places)\n\n"
                 "Detection: golden check / fingerprint / either; at or above the guaranteed bit: the golden "
                 "check on the single-bit injections that hit at least one element whose own guaranteed bit is "
                 "at most the flipped bit (the guarantee says 100%; n/a for multi-bit flips, which it does not "
                 "cover). Localisation, of the runs the golden check failed, as "
                 "`substrated compare` sees the run: located (every element outside the bound is an injected "
                 "one), complete (and every injected element is outside it), pattern named (compare names the "
                 "model: single_element, warp_aligned, periodic; a row or column stripe where the geometry "
                 "makes it the same thing).\n\n"
                 "| configuration | model | runs | golden | fingerprint | either | golden at or above the "
                 "guaranteed bit | located | complete | pattern named |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const ConfigResult& r : results) {
      for (std::size_t i = 0; i < std::size(k_models); ++i) {
        const ModelTally& t = r.models[i];
        std::cout << "| " << r.config.label() << " | " << model_name(k_models[i]) << " | " << t.runs << " | "
                  << pct(t.golden, t.runs) << "% | " << pct(t.fingerprint, t.runs) << "% | " << pct(t.either, t.runs)
                  << "% | " << guaranteed_cell(t) << " | " << pct(t.located, t.golden) << "% | "
                  << pct(t.complete, t.golden) << "% | " << pct(t.named, t.golden) << "% |\n";
      }
    }
    std::cout << "\n| model (all configurations) | runs | golden | either | golden at or above the guaranteed bit | "
                 "located | complete | pattern named |\n|---|---|---|---|---|---|---|---|\n";
    for (std::size_t i = 0; i < std::size(k_models); ++i) {
      ModelTally all;
      for (const ConfigResult& r : results) all.add(r.models[i]);
      const bool met = all.guaranteed_golden == all.guaranteed_runs;
      all_met = all_met && met;
      std::cout << "| " << model_name(k_models[i]) << " | " << all.runs << " | " << pct(all.golden, all.runs) << "% | "
                << pct(all.either, all.runs) << "% | " << guaranteed_cell(all) << (met ? "" : " (guarantee MISSED)")
                << " | " << pct(all.located, all.golden) << "% | " << pct(all.complete, all.golden) << "% | "
                << pct(all.named, all.golden) << "% |\n";
    }
  }
  if (with_memory) {
    Tally stored, transient;
    for (int bit = 0; bit < 32; ++bit) stored.add(memory.stored[bit]), transient.add(memory.transient[bit]);
    const bool met =
        stored.golden == stored.runs && transient.golden == transient.runs && memory.clean_false_alarms == 0;
    all_met = all_met && met;
    std::cout << "\n### Memory probe (" << memory_size << " region, 5 patterns)\n\n"
              << "| injection | runs | detected | located (word + bit) | classified (stored/transient) "
                 "|\n|---|---|---|---|---|\n"
              << "| stored | " << stored.runs << " | " << pct(stored.golden, stored.runs) << "% | "
              << pct(stored.located, stored.golden) << "% | " << pct(memory.persistence_right_stored, stored.golden)
              << "% |\n"
              << "| transient | " << transient.runs << " | " << pct(transient.golden, transient.runs) << "% | "
              << pct(transient.located, transient.golden) << "% | "
              << pct(memory.persistence_right_transient, transient.golden) << "% |\n"
              << "\nclean memory runs: " << memory.clean_runs << ", false alarms: " << memory.clean_false_alarms
              << "; target (100% detected at every bit): " << (met ? "met" : "missed") << "\n";
  }
  int unstable = 0, errors = 0;
  for (const ConfigResult& r : results) {
    unstable += r.fingerprint_unstable;
    for (const Tally& t : r.per_bit) errors += t.errors;
    for (const ModelTally& t : r.models) errors += t.errors;
  }
  std::cout << "\nfingerprint of the direct clean re-run differed from the probe's clean run: " << unstable
            << " time(s); runs that errored: " << errors << "\n";
  std::cout << "\nelapsed " << bench::fixed(bench::now_seconds() - started, 1)
            << " s; load average at end: " << bench::load_average() << "\n";
  return errors == 0 ? 0 : 1;
}
