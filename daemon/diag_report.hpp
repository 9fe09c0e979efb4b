#pragma once
// The diag report: one self-contained HTML document (inline SVG and CSS, no scripts, no external
// resources) drawn from the JSON of `substrated diag` (or of `probe --json`, wrapped): a summary
// table, per-device timelines of throughput and telemetry, and for every failing result the
// heatmap of its mismatch positions, its flipped-bit histogram and its replay command.
// docs/diag-report.md shows one.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/expected.hpp"

namespace substrate {

// Largest input `read_report_input` accepts: a level-4 diag's JSON (thousands of iterations with
// their results) stays far below; a larger file is not a diag document.
inline constexpr std::size_t k_report_input_max_bytes = std::size_t{256} << 20;

// The input of `substrated report FILE`: a diag document ({"diag": {...}}) as is, or a
// `probe --json` document ({"results": [...]}) wrapped by diag_from_probe_results.
// io_error: the file cannot be read (missing, not a regular file, larger than
// k_report_input_max_bytes); invalid_argument: not JSON ("FILE: not JSON: <parser message>") or
// neither shape.
Expected<nlohmann::json> read_report_input(const std::string& path);

// A `probe --json` document in the diag shape: one device entry per device id (in order of first
// appearance), its results in order, verdict fail when any result failed, else error when any
// could not run (error, hung, crashed), else skipped when every result was skipped, else pass;
// iterations the results that ran, failed_iterations those that failed; a timeline with one point
// per result (probe: its spec key, so each shape is a series of its own; iteration counted per spec
// key; t_seconds from the earliest finished_at; throughput in FLOP/s for GEMM (2·m·n·k)
// and attention (4·heads·seq_len²·head_dim, halved when causal) over device_seconds, bytes/s for
// memory; no telemetry). level is null: the report then says it shows a probe run.
// invalid_argument when "results" is not an array of results.
Expected<nlohmann::json> diag_from_probe_results(const nlohmann::json& document);

// The HTML document for a diag document of the shape docs/diag-report.md describes (extra fields
// are ignored). Every string from the input is escaped. invalid_argument names the first field
// that is missing or of the wrong type, with its path ("diag.devices[0].timeline[3].t_seconds:
// ...").
Expected<std::string> render_diag_report(const nlohmann::json& document);

// render_diag_report written to `path` atomically (common/file_io.hpp): what `diag --report FILE`
// and `substrated report` call. Errors: those of render_diag_report, io_error from the write.
Status write_diag_report(const nlohmann::json& document, const std::string& path);

}  // namespace substrate
