#pragma once
// Small helpers shared by the sysfs readers. Absence is normal in sysfs (a driver exposes what it
// has), so "missing" is distinguished from "present but unreadable".
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.hpp"
#include "probes/telemetry/model.hpp"

namespace substrate::telemetry::sysfs {

// Cause label values for sysfs read errors.
inline constexpr const char* kCauseUnreadable = "unreadable";
inline constexpr const char* kCauseMalformed = "malformed";

// The file's text without trailing whitespace; ErrorKind::io_error when it exists but cannot be
// read (amdgpu answers EIO while the GPU is in reset), ErrorKind::unavailable when it is missing.
Expected<std::string> read_text(const std::filesystem::path& file);

// A decimal integer with optional surrounding whitespace; ErrorKind::corrupt otherwise.
Expected<std::int64_t> parse_integer(std::string_view text);

// Entries of `dir` named <prefix><digits> ("card0", "hwmon3"), sorted by number; empty when `dir`
// is missing.
std::vector<std::filesystem::path> numbered_entries(const std::filesystem::path& dir, std::string_view prefix);

// The PCI bus id of the device behind `dir`/device (the basename of the symlink target, e.g.
// 0000:65:00.0), normalised; empty when there is no such link or it does not name a PCI device.
std::string pci_bus_id_of(const std::filesystem::path& dir);

// Reads the regular files of `dir` whose names satisfy `wanted` into name -> text. Files that exist
// but cannot be read are reported in `errors` for `source` and left out.
std::map<std::string, std::string> read_attributes(const std::filesystem::path& dir,
                                                   bool (*wanted)(std::string_view name), const char* source,
                                                   std::vector<ReadError>& errors);

}  // namespace substrate::telemetry::sysfs
