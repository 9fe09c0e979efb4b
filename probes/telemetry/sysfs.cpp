#include "probes/telemetry/sysfs.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

#include "common/file_io.hpp"
#include "probes/telemetry/join.hpp"

namespace substrate::telemetry::sysfs {

namespace fs = std::filesystem;

Expected<std::string> read_text(const fs::path& file) {
  auto text = read_file(file.string());
  if (!text) {
    const ReadFileError& failure = text.error();
    if (failure.step == ReadFileError::Step::open && failure.error_number == ENOENT) {
      return Error{ErrorKind::unavailable, file.string() + ": missing"};
    }
    // A FIFO or device node in place of an attribute is refused at once (not_regular), never read.
    return Error{ErrorKind::io_error, failure.error_number != 0
                                          ? file.string() + ": " + std::strerror(failure.error_number)
                                          : failure.message};
  }
  std::string content = std::move(*text);
  while (!content.empty() && std::isspace(static_cast<unsigned char>(content.back()))) content.pop_back();
  return content;
}

Expected<std::int64_t> parse_integer(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Error{ErrorKind::corrupt, "not an integer: '" + std::string(text) + "'"};
  }
  return value;
}

std::vector<fs::path> numbered_entries(const fs::path& dir, std::string_view prefix) {
  std::vector<std::pair<long, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view digits = std::string_view(name).substr(prefix.size());
    long number = 0;
    const auto [digits_end, parse_error] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (parse_error != std::errc() || digits_end != digits.data() + digits.size() || digits.front() == '-') continue;
    found.emplace_back(number, it->path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [number, path] : found) paths.push_back(std::move(path));
  return paths;
}

std::string pci_bus_id_of(const fs::path& dir) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(dir / "device", ec);
  if (ec) return {};
  return normalize_pci_bus_id(target.filename().string());
}

std::map<std::string, std::string> read_attributes(const fs::path& dir, bool (*wanted)(std::string_view name),
                                                   const char* source, std::vector<ReadError>& errors) {
  std::map<std::string, std::string> attributes;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!wanted(name) || !it->is_regular_file(ec)) continue;
    auto text = read_text(it->path());
    if (text) {
      attributes.emplace(name, std::move(*text));
    } else {
      errors.push_back({source, kCauseUnreadable, text.error().message});
    }
  }
  return attributes;
}

}  // namespace substrate::telemetry::sysfs
