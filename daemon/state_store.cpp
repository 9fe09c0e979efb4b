// Persistent state with crash-safe writes.
//
// File format (see docs/configuration.md, "State files"): one header line
//   "substrated-state v1 <length> <checksum>\n"
// where <length> is the body's size in bytes (decimal) and <checksum> the FNV-1a 64-bit hash of
// the body (16 lower-case hex digits), followed by exactly <length> bytes of body. A write goes
// to "<path>.tmp.<pid>", is fsynced, renamed over <path>, and the directory is fsynced, so a
// reader sees either the old file or the new one, never a mix.
#include "daemon/state_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/file_io.hpp"
#include "kernels/fingerprint.hpp"

namespace substrate {
namespace {

constexpr const char* k_magic = "substrated-state";
constexpr const char* k_version = "v1";
constexpr std::size_t k_max_file_bytes = 256u << 20;  // far above any real state; guards memory
constexpr std::size_t k_budget_history_max = 64;
constexpr int k_state_format = 1;

std::string hex64(std::uint64_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = digits[value & 0xf];
    value >>= 4;
  }
  return out;
}

// Non-finite doubles have no JSON form: they are written as the strings "nan", "inf", "-inf".
nlohmann::json number_to_json(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

struct Malformed {
  std::string message;
};

double json_to_number(const nlohmann::json& value, const char* what) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text == "nan") return std::nan("");
    if (text == "inf") return HUGE_VAL;
    if (text == "-inf") return -HUGE_VAL;
  }
  throw Malformed{std::string("'") + what + "' must be a number"};
}

const nlohmann::json& field(const nlohmann::json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) throw Malformed{std::string("missing '") + name + "'"};
  return *it;
}

std::string string_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json& value = field(object, name);
  if (!value.is_string()) throw Malformed{std::string("'") + name + "' must be a string"};
  return value.get<std::string>();
}

std::uint64_t unsigned_field(const nlohmann::json& object, const char* name) {
  const nlohmann::json& value = field(object, name);
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<long long>() >= 0)) {
    throw Malformed{std::string("'") + name + "' must be a non-negative integer"};
  }
  return value.get<std::uint64_t>();
}

// The deepest nesting of arrays and objects in JSON text (strings skipped), counted without
// recursion; stops counting past `limit`. Our state nests 4 deep; a body nesting 200,000 arrays
// must be refused before anything recursive (dump, a message naming the value) touches it.
std::size_t json_nesting_depth(const std::string& text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

constexpr std::size_t k_max_json_depth = 32;

}  // namespace

Status write_checked_file(const std::string& path, const std::string& contents) {
  const std::string header = std::string(k_magic) + " " + k_version + " " + std::to_string(contents.size()) + " " +
                             hex64(fnv1a64(contents)) + "\n";
  return write_file_atomic(path, header + contents);
}

Expected<std::string> read_checked_file(const std::string& path) {
  auto file = read_file(path, k_max_file_bytes);
  if (!file) {
    const ReadFileError& failure = file.error();
    // Too large or not a regular file (a FIFO would block every start): set aside like bad contents.
    const bool unusable =
        failure.step == ReadFileError::Step::too_large || failure.step == ReadFileError::Step::not_regular;
    const ErrorKind kind = unusable ? ErrorKind::corrupt : ErrorKind::io_error;
    return Error{kind, failure.message};
  }
  const std::string& data = *file;

  auto corrupt = [&](const std::string& why) { return Error{ErrorKind::corrupt, path + ": " + why}; };
  if (data.empty()) return corrupt("empty file");
  const std::size_t newline = data.find('\n');
  if (newline == std::string::npos || newline > 128) return corrupt("no header line");
  const std::string header = data.substr(0, newline);
  // Exactly four fields separated by single spaces.
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (;;) {
    const std::size_t space = header.find(' ', start);
    fields.push_back(header.substr(start, space == std::string::npos ? std::string::npos : space - start));
    if (space == std::string::npos) break;
    start = space + 1;
  }
  if (fields.size() != 4 || fields[0] != k_magic) return corrupt("not a substrated state file (bad header)");
  if (fields[1] != k_version)
    return corrupt("unsupported format version '" + fields[1] + "' (expected " + k_version + ")");
  std::uint64_t length = 0;
  {
    const std::string& text = fields[2];
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return corrupt("bad length in header");
  }
  if (fields[3].size() != 16 || fields[3].find_first_not_of("0123456789abcdef") != std::string::npos) {
    return corrupt("bad checksum field in header");
  }
  const std::size_t body_size = data.size() - newline - 1;
  if (body_size < length) {
    return corrupt("truncated: header says " + std::to_string(length) + " bytes, body has " +
                   std::to_string(body_size));
  }
  if (body_size > length) {
    return corrupt("trailing data: header says " + std::to_string(length) + " bytes, body has " +
                   std::to_string(body_size));
  }
  std::string body = data.substr(newline + 1);
  const std::string actual = hex64(fnv1a64(body));
  if (actual != fields[3]) return corrupt("checksum mismatch (header " + fields[3] + ", body " + actual + ")");
  return body;
}

std::string serialize_state(const State& state) {
  nlohmann::json baselines = nlohmann::json::array();
  for (const auto& [key, baseline] : state.baselines) {
    nlohmann::json history = nlohmann::json::array();
    const std::size_t skip = baseline.budget_history.size() > k_budget_history_max
                                 ? baseline.budget_history.size() - k_budget_history_max
                                 : 0;
    for (std::size_t i = skip; i < baseline.budget_history.size(); ++i) {
      history.push_back(number_to_json(baseline.budget_history[i]));
    }
    baselines.push_back({{"device_uuid", key.device_uuid},
                         {"driver", key.driver},
                         {"kernel_build", key.kernel_build},
                         {"spec_key", key.spec_key},
                         {"fingerprint", baseline.fingerprint},
                         {"device_seconds", number_to_json(baseline.device_seconds)},
                         {"runs", baseline.runs},
                         {"budget_history", std::move(history)},
                         {"updated_at", number_to_json(baseline.updated_at)}});
  }
  nlohmann::json devices = nlohmann::json::object();
  for (const auto& [id, record] : state.devices) {
    devices[id] = {{"fields", record.fields}, {"updated_at", number_to_json(record.updated_at)}};
  }
  nlohmann::json counters = nlohmann::json::array();
  for (const TelemetryCounterRecord& record : state.telemetry_counters) {
    nlohmann::json ecc = nlohmann::json::array();
    for (const auto& e : record.ecc) {
      ecc.push_back({{"kind", e.kind}, {"scope", e.scope}, {"location", e.location}, {"count", e.count}});
    }
    counters.push_back({{"source", record.source},
                        {"local_id", record.local_id},
                        {"pci_bus_id", record.pci_bus_id},
                        {"uuid", record.uuid},
                        {"ecc", std::move(ecc)}});
  }
  nlohmann::json verdicts = nlohmann::json::object();
  for (const auto& [id, record] : state.telemetry_verdicts) {
    nlohmann::json events = nlohmann::json::object();
    for (const auto& [kind, event] : record.events) events[kind] = {{"count", event.first}, {"reason", event.second}};
    verdicts[id] = {{"health", record.health},
                    {"reasons", record.reasons},
                    {"consecutive_passes", record.consecutive_passes},
                    {"events", std::move(events)}};
  }
  nlohmann::json diags = nlohmann::json::object();
  for (const auto& [id, summary] : state.diags) diags[id] = diag::to_json(summary);
  const nlohmann::json document = {{"format", k_state_format},
                                   {"diags", std::move(diags)},
                                   {"baselines", std::move(baselines)},
                                   {"devices", std::move(devices)},
                                   {"telemetry_counters", std::move(counters)},
                                   {"telemetry_verdicts", std::move(verdicts)}};
  // Invalid UTF-8 in a string (a driver name from a device) is replaced, never thrown.
  return document.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Expected<State> deserialize_state(const std::string& text) {
  auto malformed = [](const std::string& why) { return Error{ErrorKind::corrupt, "state: " + why}; };
  if (json_nesting_depth(text, k_max_json_depth) > k_max_json_depth)
    return malformed("JSON nested deeper than " + std::to_string(k_max_json_depth) + " levels");
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (document.is_discarded()) return malformed("not valid JSON");
  try {
    if (!document.is_object()) throw Malformed{"the document must be an object"};
    const nlohmann::json& format = field(document, "format");
    if (!format.is_number_integer() || format.get<long long>() != k_state_format) {
      // Only a scalar is quoted back: never dump a structure of unknown size into a message.
      const std::string shown = format.is_primitive()
                                    ? format.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                    : std::string(format.is_array() ? "an array" : "an object");
      throw Malformed{"unsupported state format " + shown.substr(0, 64) + " (expected " +
                      std::to_string(k_state_format) + ")"};
    }
    State state;
    const nlohmann::json& baselines = field(document, "baselines");
    if (!baselines.is_array()) throw Malformed{"'baselines' must be an array"};
    for (const nlohmann::json& entry : baselines) {
      if (!entry.is_object()) throw Malformed{"each baseline must be an object"};
      BaselineKey key{string_field(entry, "device_uuid"), string_field(entry, "driver"),
                      string_field(entry, "kernel_build"), string_field(entry, "spec_key")};
      Baseline baseline;
      baseline.fingerprint = string_field(entry, "fingerprint");
      baseline.device_seconds = json_to_number(field(entry, "device_seconds"), "device_seconds");
      baseline.runs = unsigned_field(entry, "runs");
      const nlohmann::json& history = field(entry, "budget_history");
      if (!history.is_array()) throw Malformed{"'budget_history' must be an array"};
      for (const nlohmann::json& budget : history)
        baseline.budget_history.push_back(json_to_number(budget, "budget_history"));
      while (baseline.budget_history.size() > k_budget_history_max) baseline.budget_history.pop_front();
      baseline.updated_at = json_to_number(field(entry, "updated_at"), "updated_at");
      state.baselines[std::move(key)] = std::move(baseline);
    }
    const nlohmann::json& devices = field(document, "devices");
    if (!devices.is_object()) throw Malformed{"'devices' must be an object"};
    for (const auto& [id, entry] : devices.items()) {
      if (!entry.is_object()) throw Malformed{"each device must be an object"};
      DeviceRecord record;
      const nlohmann::json& fields = field(entry, "fields");
      if (!fields.is_object()) throw Malformed{"'fields' must be an object"};
      for (const auto& [name, value] : fields.items()) {
        if (!value.is_string()) throw Malformed{"device field '" + name + "' must be a string"};
        record.fields[name] = value.get<std::string>();
      }
      record.updated_at = json_to_number(field(entry, "updated_at"), "updated_at");
      state.devices[id] = std::move(record);
    }
    // Both telemetry sections are optional: a state file written before they existed has none.
    if (document.contains("telemetry_counters")) {
      const nlohmann::json& counters = document["telemetry_counters"];
      if (!counters.is_array()) throw Malformed{"'telemetry_counters' must be an array"};
      for (const nlohmann::json& entry : counters) {
        if (!entry.is_object()) throw Malformed{"each telemetry counter record must be an object"};
        TelemetryCounterRecord record{string_field(entry, "source"),
                                      string_field(entry, "local_id"),
                                      string_field(entry, "pci_bus_id"),
                                      string_field(entry, "uuid"),
                                      {}};
        const nlohmann::json& ecc = field(entry, "ecc");
        if (!ecc.is_array()) throw Malformed{"'ecc' must be an array"};
        for (const nlohmann::json& e : ecc) {
          if (!e.is_object()) throw Malformed{"each ecc count must be an object"};
          record.ecc.push_back({string_field(e, "kind"), string_field(e, "scope"), string_field(e, "location"),
                                unsigned_field(e, "count")});
        }
        state.telemetry_counters.push_back(std::move(record));
      }
    }
    if (document.contains("telemetry_verdicts")) {
      const nlohmann::json& verdicts = document["telemetry_verdicts"];
      if (!verdicts.is_object()) throw Malformed{"'telemetry_verdicts' must be an object"};
      for (const auto& [id, entry] : verdicts.items()) {
        if (!entry.is_object()) throw Malformed{"each telemetry verdict must be an object"};
        TelemetryVerdictRecord record;
        record.health = string_field(entry, "health");
        const nlohmann::json& reasons = field(entry, "reasons");
        if (!reasons.is_array()) throw Malformed{"'reasons' must be an array"};
        for (const nlohmann::json& reason : reasons) {
          if (!reason.is_string()) throw Malformed{"each reason must be a string"};
          record.reasons.push_back(reason.get<std::string>());
        }
        record.consecutive_passes = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(unsigned_field(entry, "consecutive_passes"), UINT32_MAX));
        const nlohmann::json& events = field(entry, "events");
        if (!events.is_object()) throw Malformed{"'events' must be an object"};
        for (const auto& [kind, event] : events.items()) {
          if (!event.is_object()) throw Malformed{"each event must be an object"};
          record.events[kind] = {unsigned_field(event, "count"), string_field(event, "reason")};
        }
        state.telemetry_verdicts[id] = std::move(record);
      }
    }
    if (document.contains("diags")) {  // absent in state written before `diag` existed
      const nlohmann::json& diags = document["diags"];
      if (!diags.is_object()) throw Malformed{"'diags' must be an object"};
      for (const auto& [id, entry] : diags.items()) {
        auto summary = diag::parse_summary(entry);
        if (!summary) throw Malformed{summary.error().message};
        state.diags[id] = std::move(summary.value());
      }
    }
    return state;
  } catch (const Malformed& problem) {
    return malformed(problem.message);
  } catch (const nlohmann::json::exception& e) {
    return malformed(e.what());
  }
}

StateStore::StateStore(std::string directory) : directory_(std::move(directory)), path_(directory_ + "/state.json") {}

State StateStore::load(std::string* note) {
  auto say = [&](const std::string& text) {
    if (note) *note = text;
  };
  remove_stale_temp_files(path_);
  Expected<std::string> text = read_checked_file(path_);
  Error problem{ErrorKind::corrupt, ""};
  if (text) {
    Expected<State> state = deserialize_state(*text);
    if (state) {
      say("loaded " + std::to_string(state->baselines.size()) + " baselines and " +
          std::to_string(state->devices.size()) + " devices from " + path_);
      return std::move(state).value();
    }
    problem = state.error();
  } else {
    problem = text.error();
    struct stat info;
    if (problem.kind == ErrorKind::io_error && ::lstat(path_.c_str(), &info) != 0 && errno == ENOENT) {
      say("no state file at " + path_ + "; starting with empty state");
      return State{};
    }
  }

  // Corrupt, truncated or unreadable: keep it for inspection, start afresh.
  const std::string base = path_ + ".corrupt-" + std::to_string(static_cast<long long>(std::time(nullptr)));
  std::string aside = base;
  struct stat existing;
  for (int n = 1; ::lstat(aside.c_str(), &existing) == 0 && n < 1000; ++n) aside = base + "-" + std::to_string(n);
  const std::string why = problem.message;
  std::string message;
  if (::rename(path_.c_str(), aside.c_str()) == 0) {
    message = "state file unusable (" + why + "); moved to " + aside + "; starting with empty state";
  } else {
    message = "state file unusable (" + why + "); could not move it aside (" + std::strerror(errno) +
              "); starting with empty state";
  }
  spdlog::warn("{}", message);
  say(message);
  return State{};
}

Status StateStore::save(const State& state) {
  std::error_code ec;
  std::filesystem::create_directories(directory_, ec);
  if (ec) return Error{ErrorKind::io_error, "cannot create state directory " + directory_ + ": " + ec.message()};
  return write_checked_file(path_, serialize_state(state));
}

}  // namespace substrate
