#pragma once
// The daemon's log lines, in the form the reader understands:
//   - stderr is the journal and the format is the default (systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream
//   it gave
//     the service; it must match stderr's, or stderr was redirected since): each line goes
//     through sd_journal_send at its syslog priority, with SYSLOG_IDENTIFIER=substrated and the
//     structured fields DEVICE, UUID, PROBE, SPEC, SEED where the line names them, so
//     `journalctl -u substrated -p warning` and `journalctl DEVICE=cuda3` work. If the journal
//     socket cannot be reached the line goes to stderr with a "<N>" priority prefix, which
//     journald's stream reader files at priority N as well.
//   - `--log.format=logfmt` or `json` (wins over the journal when given): one line per event with an RFC 3339 UTC
//   timestamp, the
//     level, the message and the same fields (lowercase keys), for log shippers off systemd.
//   - otherwise (`human`, the default): "LEVEL: message" (coloured with time on a terminal), as
//     before.
//
// The fields come from the daemon's convention for device-scoped lines (daemon/service.cpp):
// "<device>: ...", "<device> <probe>: ...", "<device> <spec key> seed <n>: ..." where <device>
// is a device id this daemon serves (set_log_devices) and a spec key starts with its probe id
// ("gemm/f32/exact/64x64x64"). A line that does not start with a known device has no fields.
#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/common.h>

#include "common/expected.hpp"

namespace substrate {

enum class LogFormat { human, logfmt, json };

// "human", "logfmt" or "json"; invalid_argument naming the value otherwise.
Expected<LogFormat> parse_log_format(std::string_view text);

// True when stderr is the stream systemd connected to the journal (JOURNAL_STREAM matches
// stderr's st_dev:st_ino).
bool stderr_is_journal();

// Syslog priority of a spdlog level (RFC 5424 section 6.2.1): critical 2, error 3, warning 4,
// info 6, debug and trace 7.
int syslog_priority(spdlog::level::level_enum level);

// The structured fields of one line, as journal field names (DEVICE, UUID, PROBE, SPEC, SEED) and
// values, in that order; empty when the line does not start with a device of `devices`
// (id -> UUID, "" when unknown).
std::vector<std::pair<std::string, std::string>> log_fields(std::string_view message,
                                                            const std::map<std::string, std::string>& devices);

// One line (with its trailing newline) in the logfmt or json format, timestamp in UTC with
// milliseconds ("2026-11-30T12:00:00.123Z"); field keys in lowercase.
std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point time,
                            spdlog::level::level_enum level, std::string_view message,
                            const std::vector<std::pair<std::string, std::string>>& fields);

// Installs the daemon's default logger "substrated" on stderr (journal, logfmt, json or human as
// above) at `level` ("info", "debug", ...).
void configure_logging(const std::string& level, LogFormat format);

// The devices the daemon serves (id -> UUID), for the fields of later lines. Thread-safe.
void set_log_devices(std::map<std::string, std::string> devices);

}  // namespace substrate
