#pragma once
// Reading values back from a /metrics scrape in tests. Series are matched by name and a subset of
// their labels, so a test names the labels it is about (substrate_device, probe, reason) and does
// not spell out the identity labels (UUID, pci_bus_id, gpu) the host's devices give each series.
#include <map>
#include <optional>
#include <sstream>
#include <string>

namespace substrate::testing {

// `name{a="x",b="y"}` (or a bare name) as the name and its labels; nullopt when malformed.
inline std::optional<std::pair<std::string, std::map<std::string, std::string>>> parse_series(const std::string& text) {
  const std::size_t brace = text.find('{');
  std::pair<std::string, std::map<std::string, std::string>> out{text.substr(0, brace), {}};
  if (brace == std::string::npos) return out;
  std::size_t i = brace + 1;
  while (i < text.size() && text[i] != '}') {
    const std::size_t equals = text.find("=\"", i);
    if (equals == std::string::npos) return std::nullopt;
    std::string value;
    std::size_t j = equals + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) ++j;
      value.push_back(text[j]);
    }
    if (j >= text.size()) return std::nullopt;
    out.second[text.substr(i, equals - i)] = value;
    i = j + 1;
    if (i < text.size() && text[i] == ',') ++i;
  }
  return out;
}

// The value of the first series in `scrape` named as `wanted` with all of `wanted`'s labels (it may
// have more); nullopt when there is none.
inline std::optional<double> series_value(const std::string& scrape, const std::string& wanted) {
  const auto want = parse_series(wanted);
  if (!want) return std::nullopt;
  std::istringstream lines(scrape);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const auto have = parse_series(line.substr(0, space));
    if (!have || have->first != want->first) continue;
    bool all = true;
    for (const auto& [name, value] : want->second) {
      const auto it = have->second.find(name);
      all = all && it != have->second.end() && it->second == value;
    }
    if (all) return std::stod(line.substr(space + 1));
  }
  return std::nullopt;
}

}  // namespace substrate::testing
