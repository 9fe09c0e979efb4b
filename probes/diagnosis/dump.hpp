#pragma once
// Tensor dumps for diagnosis (`substrated probe --dump DIR`): per kernel run, a directory
//   DIR/<device id>/<spec key, '/' -> '_'>-seed<N>[-drill]/
// holding
//   output.npy    float32, the device output exactly as read back (shaped)
//   golden.npy    float64, the CPU golden
//   bound.npy     float64, the per-element error bound (random mode only)
//   a.npy, b.npy  (gemm) / q.npy, k.npy, v.npy (attention): the inputs, REGENERATED ON THE CPU
//                 from the shared generator with the run's seed; the device generated its own
//                 copy on the device from the same bits (generator parity is tested separately)
//   result.json   the probe result (replayable: `substrated probe --replay result.json`)
//   manifest.json what each file is, its shape and dtype
// Runs without tensors (memory probe, errors) get result.json and manifest.json only.
#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/core/registry.hpp"

namespace substrate {

// "gemm_f32_exact_64x64x64-seed7", with "-drill" when a fault was injected.
std::string dump_directory_name(const ProbeResult& result);

// The inputs of a run regenerated on the CPU (ProbeDescriptor::dump_inputs); empty for a probe
// without inputs worth dumping or an unknown one.
std::vector<DumpInput> regenerate_inputs(const ProbeSpec& spec);

// Writes the dump of `result` under `root` and returns the directory written. The result must
// have been run with capture_tensors for tensors to be written. io_error names the file.
Expected<std::string> write_dump(const std::string& root, const ProbeResult& result);

// Daemon use: keeps the dump of the last failing run per device and probe in
// root/<device id>/<probe>-last-failure/ (replacing the previous one), then deletes the oldest
// other such dumps under root until the total is at most `max_bytes`. A dump larger than
// `max_bytes` on its own is not kept (invalid_argument says so).
Expected<std::string> keep_failure_dump(const std::string& root, const ProbeResult& result, std::uint64_t max_bytes);

}  // namespace substrate
