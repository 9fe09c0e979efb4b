#include "probes/telemetry/amdgpu_ras.hpp"

#include <optional>
#include <regex>
#include <sstream>
#include <string>

#include "probes/telemetry/sysfs.hpp"

namespace substrate::telemetry {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kErrCountSuffix = "_err_count";

bool is_err_count(std::string_view name) {
  return name.size() > kErrCountSuffix.size() && name.ends_with(kErrCountSuffix);
}

}  // namespace

Expected<RasErrorCount> parse_ras_error_count(std::string_view text) {
  std::optional<std::uint64_t> ue, ce;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    if (key != "ue" && key != "ce") continue;
    auto value = sysfs::parse_integer(std::string_view(line).substr(colon + 1));
    if (!value || *value < 0) return Error{ErrorKind::corrupt, "bad " + key + " count: '" + line + "'"};
    (key == "ue" ? ue : ce) = static_cast<std::uint64_t>(*value);
  }
  if (!ue || !ce) return Error{ErrorKind::corrupt, "missing ue or ce line"};
  return RasErrorCount{*ue, *ce};
}

VramBadPages parse_vram_bad_pages(std::string_view text) {
  static const std::regex entry(R"(^\s*0x[0-9a-fA-F]+\s*:\s*0x[0-9a-fA-F]+\s*:\s*[RPF]\s*$)");
  VramBadPages result;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++(std::regex_match(line, entry) ? result.pages : result.malformed_lines);
  }
  return result;
}

SourceResult read_amdgpu_ras(const fs::path& sysfs_root) {
  SourceResult result;
  for (const fs::path& card : sysfs::numbered_entries(sysfs_root / "class" / "drm", "card")) {
    const fs::path ras = card / "device" / "ras";
    std::error_code ec;
    if (!fs::is_directory(ras, ec)) continue;
    TelemetryDevice device;
    device.source = kSourceAmdgpu;
    device.local_id = "drm-" + card.filename().string();
    device.pci_bus_id = sysfs::pci_bus_id_of(card);
    const auto files = sysfs::read_attributes(ras, is_err_count, kSourceAmdgpu, result.errors);
    for (const auto& [name, text] : files) {
      const std::string block = name.substr(0, name.size() - kErrCountSuffix.size());
      auto counts = parse_ras_error_count(text);
      if (!counts) {
        result.errors.push_back(
            {kSourceAmdgpu, sysfs::kCauseMalformed, (ras / name).string() + ": " + counts.error().message});
        continue;
      }
      device.readings.ecc.push_back({"corrected", "volatile", block, counts->corrected});
      device.readings.ecc.push_back({"uncorrected", "volatile", block, counts->uncorrected});
    }
    auto bad_pages = sysfs::read_text(ras / "gpu_vram_bad_pages");
    if (bad_pages) {
      const VramBadPages parsed = parse_vram_bad_pages(*bad_pages);
      device.readings.vram_bad_pages = parsed.pages;
      for (std::uint64_t i = 0; i < parsed.malformed_lines; ++i) {
        result.errors.push_back(
            {kSourceAmdgpu, sysfs::kCauseMalformed, (ras / "gpu_vram_bad_pages").string() + ": malformed entry"});
      }
    } else if (bad_pages.error().kind == ErrorKind::io_error) {
      result.errors.push_back({kSourceAmdgpu, sysfs::kCauseUnreadable, bad_pages.error().message});
    }
    result.devices.push_back(std::move(device));
  }
  return result;
}

}  // namespace substrate::telemetry
