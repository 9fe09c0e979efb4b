#pragma once
// amdgpu RAS counters from sysfs (Documentation/gpu/amdgpu/ras.rst):
//   <root>/class/drm/card*/device/ras/<block>_err_count   lines "ue: N" and "ce: N"
//   <root>/class/drm/card*/device/ras/gpu_vram_bad_pages  lines "0x<pfn> : 0x<size> : <R|P|F>"
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "common/expected.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry {

struct RasErrorCount {
  std::uint64_t uncorrected = 0;  // "ue"
  std::uint64_t corrected = 0;    // "ce"
};

// Parses one <block>_err_count file. Other keys (newer kernels add "de:" for deferred errors) are
// ignored; ErrorKind::corrupt when "ue" or "ce" is missing or not a number.
Expected<RasErrorCount> parse_ras_error_count(std::string_view text);

struct VramBadPages {
  std::uint64_t pages = 0;            // well-formed entries
  std::uint64_t malformed_lines = 0;  // lines skipped
};

// Counts the entries of gpu_vram_bad_pages; an empty file means no bad pages.
VramBadPages parse_vram_bad_pages(std::string_view text);

// One device (source "amdgpu", local id "drm-cardN") per card that has a ras/ directory, with
// ECC counts (scope volatile: counted since the driver loaded, location = RAS block) and
// vram_bad_pages. Malformed values are skipped and reported in SourceResult::errors.
SourceResult read_amdgpu_ras(const std::filesystem::path& sysfs_root);

}  // namespace substrate::telemetry
