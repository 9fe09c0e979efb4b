// Log sinks for the journal and for logfmt/json (see daemon/logging.hpp).
#include "daemon/logging.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
// Without this, sd_journal_sendv adds CODE_FILE/CODE_LINE/CODE_FUNC of the sink itself: noise.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace substrate {
namespace {

// Where journald receives native entries (and where libsystemd's sd_journal_send writes).
constexpr const char* k_journal_socket = "/run/systemd/journal/socket";

std::mutex g_devices_mutex;
std::map<std::string, std::string> g_devices;  // id -> UUID

std::map<std::string, std::string> devices_now() {
  std::lock_guard lock(g_devices_mutex);
  return g_devices;
}

// logfmt value: bare when it has no space, quote, equals sign or control character; else quoted
// with \" \\ \n escaped.
void append_logfmt_value(std::string& out, std::string_view value) {
  bool bare = !value.empty();
  for (char c : value) bare = bare && c != ' ' && c != '"' && c != '=' && static_cast<unsigned char>(c) > 0x1f;
  if (bare) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

// JSON string (RFC 8259 section 7): quotes, backslash and control characters escaped; other bytes
// as they are (the daemon's messages are UTF-8 or ASCII).
void append_json_string(std::string& out, std::string_view value) {
  out.push_back('"');
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

const char* level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "info";
  }
}

// logfmt or json on stderr.
class FormattedSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FormattedSink(LogFormat format) : format_(format) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const std::string line = format_log_line(format_, msg.time, msg.level, text, log_fields(text, devices_now()));
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogFormat format_;
};

// sd_journal_send with the priority and fields; "<N>message" on stderr when the journal socket
// cannot be reached (journald's stream reader still files it at priority N).
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const int priority = syslog_priority(msg.level);
    std::vector<std::string> entries{"MESSAGE=" + std::string(text), "PRIORITY=" + std::to_string(priority),
                                     "SYSLOG_IDENTIFIER=substrated"};
    for (const auto& [key, value] : log_fields(text, devices_now())) entries.push_back(key + "=" + value);
    std::vector<iovec> vectors;
    for (std::string& entry : entries) vectors.push_back({entry.data(), entry.size()});
    // sd_journal_sendv reports success when the socket is missing (it drops the entry quietly),
    // so look for journald's socket first.
    if (::access(k_journal_socket, W_OK) == 0 &&
        sd_journal_sendv(vectors.data(), static_cast<int>(vectors.size())) >= 0)
      return;
    const std::string line = "<" + std::to_string(priority) + ">" + std::string(text) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

Expected<LogFormat> parse_log_format(std::string_view text) {
  if (text == "human") return LogFormat::human;
  if (text == "logfmt") return LogFormat::logfmt;
  if (text == "json") return LogFormat::json;
  return Error{ErrorKind::invalid_argument, "--log.format '" + std::string(text) + "': expected human, logfmt or json"};
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  std::uintmax_t device = 0, inode = 0;
  char tail = 0;
  if (std::sscanf(stream, "%ju:%ju%c", &device, &inode, &tail) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<std::uintmax_t>(st.st_dev) == device && static_cast<std::uintmax_t>(st.st_ino) == inode;
}

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

std::vector<std::pair<std::string, std::string>> log_fields(std::string_view message,
                                                            const std::map<std::string, std::string>& devices) {
  std::vector<std::pair<std::string, std::string>> fields;
  // The prefix ends at the first ": "; its words are device, then probe or spec key, then "seed N".
  const auto colon = message.find(": ");
  if (colon == std::string_view::npos) return fields;
  std::vector<std::string_view> words;
  std::string_view prefix = message.substr(0, colon);
  while (!prefix.empty()) {
    const auto space = prefix.find(' ');
    words.push_back(prefix.substr(0, space));
    if (space == std::string_view::npos) break;
    prefix.remove_prefix(space + 1);
  }
  if (words.empty() || words.size() > 4) return fields;
  const auto device = devices.find(std::string(words[0]));
  if (device == devices.end()) return fields;
  fields.emplace_back("DEVICE", device->first);
  if (!device->second.empty()) fields.emplace_back("UUID", device->second);
  if (words.size() >= 2) {
    const std::string_view second = words[1];
    const auto slash = second.find('/');
    fields.emplace_back("PROBE", std::string(second.substr(0, slash)));
    if (slash != std::string_view::npos) fields.emplace_back("SPEC", std::string(second));
  }
  if (words.size() == 4 && words[2] == "seed" && words[3].find_first_not_of("0123456789") == std::string_view::npos)
    fields.emplace_back("SEED", std::string(words[3]));
  return fields;
}

std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point time,
                            spdlog::level::level_enum level, std::string_view message,
                            const std::vector<std::pair<std::string, std::string>>& fields) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(since_epoch / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char stamp[40];
  const std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(since_epoch % 1000));

  std::string out;
  if (format == LogFormat::json) {
    out = "{\"ts\":\"" + std::string(stamp) + "\",\"level\":\"" + level_name(level) + "\",\"msg\":";
    append_json_string(out, message);
    for (const auto& [key, value] : fields) {
      out += ",\"" + lowercase(key) + "\":";
      append_json_string(out, value);
    }
    out += "}\n";
  } else {
    out = "ts=" + std::string(stamp) + " level=" + level_name(level) + " msg=";
    append_logfmt_value(out, message);
    for (const auto& [key, value] : fields) {
      out += " " + lowercase(key) + "=";
      append_logfmt_value(out, value);
    }
    out += "\n";
  }
  return out;
}

void configure_logging(const std::string& level, LogFormat format) {
  std::shared_ptr<spdlog::logger> logger;
  // An explicit logfmt or json wins even under systemd (for a shipper that parses the journal's
  // MESSAGE); the default picks the journal when stderr is it.
  if (format == LogFormat::human && stderr_is_journal()) {
    logger = std::make_shared<spdlog::logger>("substrated", std::make_shared<JournalSink>());
  } else if (format != LogFormat::human) {
    logger = std::make_shared<spdlog::logger>("substrated", std::make_shared<FormattedSink>(format));
  } else {
    logger = std::make_shared<spdlog::logger>("substrated", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    if (!isatty(STDERR_FILENO)) logger->set_pattern("%l: %v");  // one line per event, no colour
  }
  spdlog::register_logger(logger);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

void set_log_devices(std::map<std::string, std::string> devices) {
  std::lock_guard lock(g_devices_mutex);
  g_devices = std::move(devices);
}

}  // namespace substrate
