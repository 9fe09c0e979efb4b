#include "daemon/diag_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "probes/core/probe_result.hpp"
#include "probes/core/registry.hpp"

namespace substrate {
namespace {

using nlohmann::json;

// A field of the input that is missing or of the wrong type; caught in render_diag_report and
// returned as invalid_argument. `path` names the field ("diag.devices[0].verdict").
struct InputError {
  std::string message;
};

[[noreturn]] void bad(const std::string& path, const std::string& what) { throw InputError{path + ": " + what}; }

const json& member(const json& object, const std::string& path, const char* key) {
  if (!object.is_object()) bad(path, "expected an object");
  const auto it = object.find(key);
  if (it == object.end()) bad(path + "." + key, "missing");
  return *it;
}

double number(const json& value, const std::string& path) {
  if (!value.is_number()) bad(path, "expected a number, got " + value.dump());
  return value.get<double>();
}

std::optional<double> number_or_null(const json& object, const std::string& path, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  return number(*it, path + "." + key);
}

std::uint64_t count(const json& value, const std::string& path) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
    bad(path, "expected a non-negative integer, got " + value.dump());
  }
  return value.get<std::uint64_t>();
}

std::string text(const json& value, const std::string& path) {
  if (!value.is_string()) bad(path, "expected a string, got " + value.dump());
  return value.get<std::string>();
}

std::string text_or_empty(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct Point {
  double t = 0.0;
  std::string probe, status;
  std::uint64_t iteration = 0;
  std::optional<double> throughput, temperature, clock, power;
  std::vector<std::string> throttle;
};

struct DeviceSection {
  std::string id, name, uuid, pci_bus_id, backend, driver;
  std::string verdict;
  std::uint64_t iterations = 0, failed_iterations = 0;
  std::optional<double> peer_share;
  std::vector<ProbeResult> results;
  std::vector<Point> timeline;
};

struct Diag {
  std::optional<std::int64_t> level;  // null: a wrapped probe run
  std::optional<double> duration;
  json started_at, finished_at;
  bool interrupted = false;
  std::optional<std::int64_t> exit_code;
  std::vector<DeviceSection> devices;
};

// nlohmann's "[json.exception.out_of_range.403] key 'x' not found" without the bracketed prefix.
std::string parser_message(const std::exception& e) {
  std::string message = e.what();
  const auto close = message.find("] ");
  return message.rfind("[json.exception", 0) == 0 && close != std::string::npos ? message.substr(close + 2) : message;
}

Point parse_point(const json& p, const std::string& path) {
  Point point;
  point.t = number(member(p, path, "t_seconds"), path + ".t_seconds");
  point.probe = text(member(p, path, "probe"), path + ".probe");
  point.iteration = count(member(p, path, "iteration"), path + ".iteration");
  point.status = text(member(p, path, "status"), path + ".status");
  point.throughput = number_or_null(p, path, "throughput");
  point.temperature = number_or_null(p, path, "temperature_celsius");
  point.clock = number_or_null(p, path, "sm_clock_hertz");
  point.power = number_or_null(p, path, "power_watts");
  if (p.contains("throttle_reasons") && !p.at("throttle_reasons").is_null()) {
    const json& reasons = p.at("throttle_reasons");
    if (!reasons.is_array()) bad(path + ".throttle_reasons", "expected an array");
    for (std::size_t i = 0; i < reasons.size(); ++i) {
      point.throttle.push_back(text(reasons[i], path + ".throttle_reasons[" + std::to_string(i) + "]"));
    }
  }
  return point;
}

DeviceSection parse_device(const json& d, const std::string& path) {
  DeviceSection device;
  const json& info = member(d, path, "device");
  device.id = text(member(info, path + ".device", "id"), path + ".device.id");
  device.name = text(member(info, path + ".device", "name"), path + ".device.name");
  device.uuid = text_or_empty(info, "uuid");
  device.pci_bus_id = text_or_empty(info, "pci_bus_id");
  device.backend = text_or_empty(info, "backend");
  device.driver = text_or_empty(info, "driver");
  device.verdict = text(member(d, path, "verdict"), path + ".verdict");
  if (device.verdict != "pass" && device.verdict != "fail" && device.verdict != "error" &&
      device.verdict != "skipped") {
    bad(path + ".verdict", "expected pass, fail, error or skipped, got '" + device.verdict + "'");
  }
  device.iterations = count(member(d, path, "iterations"), path + ".iterations");
  device.failed_iterations = count(member(d, path, "failed_iterations"), path + ".failed_iterations");
  device.peer_share = number_or_null(d, path, "peer_throughput_share");
  const json& results = member(d, path, "results");
  if (!results.is_array()) bad(path + ".results", "expected an array");
  for (std::size_t i = 0; i < results.size(); ++i) {
    try {
      device.results.push_back(results[i].get<ProbeResult>());
    } catch (const json::exception& e) {
      bad(path + ".results[" + std::to_string(i) + "]", "not a probe result: " + parser_message(e));
    }
  }
  const json& timeline = member(d, path, "timeline");
  if (!timeline.is_array()) bad(path + ".timeline", "expected an array");
  for (std::size_t i = 0; i < timeline.size(); ++i) {
    device.timeline.push_back(parse_point(timeline[i], path + ".timeline[" + std::to_string(i) + "]"));
  }
  return device;
}

Diag parse_diag(const json& document) {
  const json& d = member(document, "document", "diag");
  const std::string path = "diag";
  Diag diag;
  const json& level = member(d, path, "level");
  if (!level.is_null()) {
    if (!level.is_number_integer() || level.get<std::int64_t>() < 1 || level.get<std::int64_t>() > 4) {
      bad("diag.level", "expected 1, 2, 3, 4 or null, got " + level.dump());
    }
    diag.level = level.get<std::int64_t>();
  }
  diag.duration = number_or_null(d, path, "duration_seconds");
  diag.started_at = d.value("started_at", json());
  diag.finished_at = d.value("finished_at", json());
  if (d.contains("interrupted")) {
    if (!d.at("interrupted").is_boolean()) bad("diag.interrupted", "expected true or false");
    diag.interrupted = d.at("interrupted").get<bool>();
  }
  if (d.contains("exit_code") && !d.at("exit_code").is_null()) {
    if (!d.at("exit_code").is_number_integer()) bad("diag.exit_code", "expected an integer");
    diag.exit_code = d.at("exit_code").get<std::int64_t>();
  }
  const json& devices = member(d, path, "devices");
  if (!devices.is_array()) bad("diag.devices", "expected an array");
  for (std::size_t i = 0; i < devices.size(); ++i) {
    diag.devices.push_back(parse_device(devices[i], "diag.devices[" + std::to_string(i) + "]"));
  }
  return diag;
}

// ---- rendering ----

// Every string from the input goes through here: device names come from drivers. The five XML
// entities only, so the document also parses as XML (the tests read it that way).
std::string escape(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (const char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 text; a driver string has no use for them.
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') ? '?' : c;
    }
  }
  return out;
}

std::string fixed(double value, int decimals) {
  char out[64];
  std::snprintf(out, sizeof out, "%.*f", decimals, value);
  return out;
}

// 1.23 G<unit>: three significant digits with an SI prefix, for axis labels and tooltips.
std::string si(double value, const std::string& unit) {
  static const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  double v = std::fabs(value);
  int p = 0;
  while (v >= 1000.0 && p < 6) {
    v /= 1000.0;
    ++p;
  }
  char out[64];
  std::snprintf(out, sizeof out, "%s%.3g %s%s", value < 0 ? "-" : "", v, prefixes[p], unit.c_str());
  return out;
}

std::string when(const json& value) {
  // Beyond year 9999 (or before 1970) is no time a run had: shown as the number, and never cast
  // out of time_t's range.
  if (value.is_number() && !(value.get<double>() >= 0 && value.get<double>() < 253402300800.0)) {
    return escape(value.dump());
  }
  if (value.is_number()) {
    const std::time_t seconds = static_cast<std::time_t>(value.get<double>());
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char out[64];
    std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &utc);
    return out;
  }
  if (value.is_string()) return escape(value.get<std::string>());
  return "-";
}

const char* k_palette[] = {"#1f77b4", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};

struct Series {
  std::string label;
  const char* color;
  std::vector<std::pair<double, double>> points;
};

struct Marker {
  double t, value;
  std::string title;  // escaped already
};

// One line chart as an inline <svg class="chart" data-chart="KIND">: a polyline per series over
// t_seconds from 0 to t_end (the device's whole timeline, so its charts line up), y from 0 (throughput) or from the
// data's range (telemetry), red markers with a tooltip (failing iterations, throttled samples).
std::string line_chart(const std::string& kind, const std::string& title, const std::string& unit,
                       const std::vector<Series>& series, const std::vector<Marker>& markers, bool from_zero,
                       double t_end) {
  constexpr double width = 720, height = 220, left = 96, right = 16, top = 28, bottom = 34;
  double t_max = t_end, y_min = from_zero ? 0.0 : INFINITY, y_max = -INFINITY;
  for (const Series& s : series) {
    for (const auto& [t, v] : s.points) {
      t_max = std::max(t_max, t);
      y_min = std::min(y_min, v);
      y_max = std::max(y_max, v);
    }
  }
  if (!(t_max > 0)) t_max = 1;
  if (!(y_max > y_min)) {
    y_max = y_min + (y_min == 0 ? 1.0 : std::fabs(y_min) * 0.1);
  } else if (!from_zero) {
    const double pad = (y_max - y_min) * 0.08;
    y_min -= pad;
    y_max += pad;
  } else {
    y_max *= 1.05;
  }
  const auto x = [&](double t) { return left + (width - left - right) * t / t_max; };
  const auto y = [&](double v) { return top + (height - top - bottom) * (1.0 - (v - y_min) / (y_max - y_min)); };
  std::ostringstream out;
  out << "<svg class=\"chart\" data-chart=\"" << escape(kind) << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\""
      << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height << "\" role=\"img\">"
      << "<title>" << escape(title) << "</title>"
      << "<text x=\"" << left << "\" y=\"16\" class=\"chart-title\">" << escape(title) << "</text>";
  for (int i = 0; i <= 4; ++i) {
    const double v = y_min + (y_max - y_min) * i / 4.0;
    out << "<line class=\"grid\" x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\"" << fixed(y(v), 1)
        << "\" y2=\"" << fixed(y(v), 1) << "\"/><text class=\"tick\" x=\"" << left - 6 << "\" y=\""
        << fixed(y(v) + 4, 1) << "\" text-anchor=\"end\">" << escape(si(v, unit)) << "</text>";
    const double t = t_max * i / 4.0;
    out << "<text class=\"tick\" x=\"" << fixed(x(t), 1) << "\" y=\"" << height - 12 << "\" text-anchor=\"middle\">"
        << escape(fixed(t, t_max < 10 ? 1 : 0)) << " s</text>";
  }
  out << "<line class=\"axis\" x1=\"" << left << "\" x2=\"" << left << "\" y1=\"" << top << "\" y2=\""
      << height - bottom << "\"/><line class=\"axis\" x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\""
      << height - bottom << "\" y2=\"" << height - bottom << "\"/>";
  double legend_x = width - right;  // labels right-aligned, the last series rightmost
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    out << "<text class=\"legend\" x=\"" << fixed(legend_x, 1) << "\" y=\"16\" fill=\"" << it->color << "\">"
        << escape(it->label) << "</text>";
    legend_x -= 16.0 + 6.5 * static_cast<double>(it->label.size());
  }
  for (const Series& s : series) {
    out << "<polyline class=\"series\" fill=\"none\" stroke=\"" << s.color << "\" points=\"";
    for (const auto& [t, v] : s.points) out << fixed(x(t), 1) << "," << fixed(y(v), 1) << " ";
    out << "\"/>";
    if (s.points.size() == 1) {  // a single sample draws no line
      out << "<circle cx=\"" << fixed(x(s.points[0].first), 1) << "\" cy=\"" << fixed(y(s.points[0].second), 1)
          << "\" r=\"3\" fill=\"" << s.color << "\"/>";
    }
  }
  for (const Marker& m : markers) {
    out << "<circle class=\"marker\" cx=\"" << fixed(x(m.t), 1) << "\" cy=\"" << fixed(y(m.value), 1)
        << "\" r=\"4\"><title>" << m.title << "</title></circle>";
  }
  out << "</svg>";
  return out.str();
}

std::string timelines(const DeviceSection& device) {
  std::ostringstream out;
  if (device.timeline.empty()) return "<p class=\"missing\">No timeline in this input.</p>";
  double t_end = 0;
  for (const Point& p : device.timeline) t_end = std::max(t_end, p.t);
  // Throughput: one chart per probe (FLOP/s and bytes/s do not share an axis), a series per
  // timeline "probe" value within it: a probe name, or a spec key ("attention/f32/128x4x64/causal")
  // where a wrapped probe run had several shapes of one probe.
  std::vector<std::string> charts, keys;
  const auto probe_of = [](const std::string& key) { return key.substr(0, key.find('/')); };
  for (const Point& p : device.timeline) {
    if (std::find(keys.begin(), keys.end(), p.probe) == keys.end()) keys.push_back(p.probe);
    if (std::find(charts.begin(), charts.end(), probe_of(p.probe)) == charts.end()) charts.push_back(probe_of(p.probe));
  }
  for (const std::string& chart : charts) {
    std::vector<Series> series;
    std::vector<Marker> failed;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (probe_of(keys[i]) != chart) continue;
      Series s{keys[i], k_palette[i % std::size(k_palette)], {}};
      for (const Point& p : device.timeline) {
        if (p.probe != keys[i] || !p.throughput) continue;
        s.points.emplace_back(p.t, *p.throughput);
        if (p.status != "pass") {
          failed.push_back({p.t, *p.throughput,
                            escape(p.probe + " iteration " + std::to_string(p.iteration) + ": " + p.status + " at " +
                                   fixed(p.t, 1) + " s")});
        }
      }
      if (!s.points.empty()) series.push_back(std::move(s));
    }
    const std::string unit = chart == "memory" ? "B/s" : "FLOP/s";
    const std::string title = "Throughput: " + chart + " (" + unit + ")";
    if (series.empty()) {
      out << "<p class=\"missing\">" << escape(title) << ": not measured</p>";
    } else {
      out << line_chart("throughput:" + chart, title, unit, series, failed, /*from_zero=*/true, t_end);
    }
  }
  struct Telemetry {
    const char* kind;
    const char* title;
    const char* unit;
    std::optional<double> Point::*field;
  };
  for (const Telemetry& t :
       {Telemetry{"temperature", "Temperature", "°C", &Point::temperature},
        Telemetry{"clock", "SM clock", "Hz", &Point::clock}, Telemetry{"power", "Power", "W", &Point::power}}) {
    Series series{t.title, "#d62728", {}};
    std::vector<Marker> throttled;
    for (const Point& p : device.timeline) {
      if (!(p.*t.field)) continue;
      series.points.emplace_back(p.t, *(p.*t.field));
      if (!p.throttle.empty() && t.field == &Point::clock) {
        std::string reasons;
        for (const std::string& r : p.throttle) reasons += (reasons.empty() ? "" : ", ") + r;
        throttled.push_back({p.t, *p.clock, escape("throttled at " + fixed(p.t, 1) + " s: " + reasons)});
      }
    }
    if (series.points.empty()) {
      out << "<p class=\"missing\" data-chart=\"" << t.kind << "\">" << t.title << ": not reported by this device</p>";
    } else {
      out << line_chart(t.kind, std::string(t.title) + " (" + t.unit + ")", t.unit, {series}, throttled,
                        /*from_zero=*/false, t_end);
    }
  }
  std::map<std::string, std::size_t> reasons;
  for (const Point& p : device.timeline) {
    for (const std::string& r : p.throttle) ++reasons[r];
  }
  if (!reasons.empty()) {
    out << "<p class=\"throttle\">Throttle reasons seen (samples): ";
    bool first = true;
    for (const auto& [reason, samples] : reasons) {
      out << (first ? "" : ", ") << escape(reason) << " (" << samples << ")";
      first = false;
    }
    out << "</p>";
  }
  return out.str();
}

// White for 0, then light yellow to dark red on a log scale of count / max.
std::string heat_color(std::uint64_t count, std::uint64_t max) {
  if (count == 0) return "#f2f2f2";
  const double s = max > 1 ? std::log1p(static_cast<double>(count)) / std::log1p(static_cast<double>(max)) : 1.0;
  const auto mix = [&](int a, int b) { return static_cast<int>(std::lround(a + (b - a) * s)); };
  char out[16];
  std::snprintf(out, sizeof out, "#%02x%02x%02x", mix(0xfe, 0xb1), mix(0xd9, 0x00), mix(0x76, 0x26));
  return out;
}

// What the rows and columns of a probe's mismatch map are (check.hpp, MismatchMap).
std::pair<std::string, std::string> map_axes(const ProbeResult& r) {
  if (r.spec.probe == "gemm") return {"row of C (m)", "column of C (n)"};
  if (r.spec.probe == "attention") return {"head x seq_len + position", "head_dim"};
  if (r.spec.probe == "canary") return {"row of " + (r.canary ? r.canary->first_diverging_layer : ""), "column"};
  return {"row", "column"};
}

// <svg class="heatmap">: one <rect class="cell"> per tile with data-row/data-col (tile indices) and
// data-count (mismatched elements), a tooltip with its element ranges.
std::string heatmap(const ProbeResult& r) {
  const MismatchMap& map = r.check.mismatch_map;
  const std::uint64_t rows = map.grid_rows(), cols = map.grid_cols();
  const double cell = std::clamp(384.0 / static_cast<double>(std::max(rows, cols)), 6.0, 28.0);
  const double left = 64, top = 22, width = left + cell * static_cast<double>(cols) + 90,
               height = top + cell * static_cast<double>(rows) + 40;
  const std::uint64_t max = *std::max_element(map.counts.begin(), map.counts.end());
  const auto [row_axis, col_axis] = map_axes(r);
  std::ostringstream out;
  out << "<svg class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << fixed(width, 0) << "\" height=\""
      << fixed(height, 0) << "\" data-rows=\"" << map.rows << "\" data-cols=\"" << map.cols << "\" data-tile-rows=\""
      << map.tile_rows << "\" data-tile-cols=\"" << map.tile_cols
      << "\" role=\"img\"><title>Mismatch positions: " << map.rows << " x " << map.cols << " output in tiles of "
      << map.tile_rows << " x " << map.tile_cols << "</title>";
  out << "<text class=\"tick\" x=\"" << left << "\" y=\"14\">" << escape(col_axis) << " 0 .. " << map.cols - 1
      << "</text>";
  out << "<text class=\"tick\" x=\"12\" y=\"" << fixed(top + cell * static_cast<double>(rows) / 2, 1)
      << "\" transform=\"rotate(-90 12 " << fixed(top + cell * static_cast<double>(rows) / 2, 1)
      << ")\" text-anchor=\"middle\">" << escape(row_axis) << " 0 .. " << map.rows - 1 << "</text>";
  for (std::uint64_t tr = 0; tr < rows; ++tr) {
    for (std::uint64_t tc = 0; tc < cols; ++tc) {
      const std::uint64_t c = map.counts[tr * cols + tc];
      const std::uint64_t r0 = tr * map.tile_rows, r1 = std::min(map.rows, r0 + map.tile_rows) - 1;
      const std::uint64_t c0 = tc * map.tile_cols, c1 = std::min(map.cols, c0 + map.tile_cols) - 1;
      out << "<rect class=\"cell\" data-row=\"" << tr << "\" data-col=\"" << tc << "\" data-count=\"" << c << "\" x=\""
          << fixed(left + cell * static_cast<double>(tc), 1) << "\" y=\""
          << fixed(top + cell * static_cast<double>(tr), 1) << "\" width=\"" << fixed(cell, 1) << "\" height=\""
          << fixed(cell, 1) << "\" fill=\"" << heat_color(c, max) << "\"><title>rows " << r0 << "-" << r1 << ", cols "
          << c0 << "-" << c1 << ": " << c << " mismatched</title></rect>";
    }
  }
  const double legend_x = left + cell * static_cast<double>(cols) + 14;
  out << "<rect x=\"" << legend_x << "\" y=\"" << top << "\" width=\"14\" height=\"14\" fill=\"" << heat_color(max, max)
      << "\"/><text class=\"tick\" x=\"" << legend_x + 18 << "\" y=\"" << top + 11 << "\">" << max
      << "</text><rect x=\"" << legend_x << "\" y=\"" << top + 20 << "\" width=\"14\" height=\"14\" fill=\""
      << heat_color(0, max) << "\"/><text class=\"tick\" x=\"" << legend_x + 18 << "\" y=\"" << top + 31
      << "\">0</text>";
  out << "</svg>";
  return out.str();
}

// <svg class="bits">: 32 <rect class="bar" data-bit data-count>, bit 31 (sign) on the left as in
// an fp32 word, the exponent (30-23) and mantissa (22-0) marked below.
std::string bit_histogram(const std::array<std::uint64_t, 32>& bits) {
  constexpr double left = 40, top = 22, bar = 12, plot = 120, width = left + 32 * bar + 16, height = top + plot + 44;
  const std::uint64_t max = std::max<std::uint64_t>(1, *std::max_element(bits.begin(), bits.end()));
  std::ostringstream out;
  out << "<svg class=\"bits\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" role=\"img\"><title>Flipped bits (fp32 word)</title><text class=\"chart-title\" x=\"" << left
      << "\" y=\"14\">Flipped bits</text><text class=\"tick\" x=\"" << left - 6 << "\" y=\"" << top + 8
      << "\" text-anchor=\"end\">" << max << "</text>";
  for (int bit = 31; bit >= 0; --bit) {
    const double x = left + (31 - bit) * bar;
    const double h = plot * static_cast<double>(bits[bit]) / static_cast<double>(max);
    const char* fill = bit == 31 ? "#d62728" : bit >= 23 ? "#ff7f0e" : "#1f77b4";
    out << "<rect class=\"bar\" data-bit=\"" << bit << "\" data-count=\"" << bits[bit] << "\" x=\"" << x + 1
        << "\" y=\"" << fixed(top + plot - h, 1) << "\" width=\"" << bar - 2 << "\" height=\"" << fixed(h, 1)
        << "\" fill=\"" << fill << "\"><title>bit " << bit << ": " << bits[bit] << "</title></rect>";
    if (bit % 4 == 3 || bit == 0) {
      out << "<text class=\"tick\" x=\"" << x + bar / 2 << "\" y=\"" << top + plot + 14 << "\" text-anchor=\"middle\">"
          << bit << "</text>";
    }
  }
  out << "<text class=\"tick\" x=\"" << left << "\" y=\"" << top + plot + 32
      << "\">sign | exponent 30-23 | mantissa 22-0"
      << "</text></svg>";
  return out.str();
}

// <svg class="offsets">: the tested memory region as a strip with a tick at each reported bad
// word (data-offset, bytes). Only the words the probe reports in detail (first_bad_words) have an
// offset: the kernels count the rest without keeping where they were.
std::string offset_strip(const MemoryDetails& memory) {
  constexpr double left = 10, width = 560, strip = 24, top = 22;
  const double bytes = static_cast<double>(std::max<std::uint64_t>(1, memory.bytes_tested));
  std::ostringstream out;
  out << "<svg class=\"offsets\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width + 2 * left
      << "\" height=\"70\" role=\"img\"><title>Bad word offsets</title><text class=\"chart-title\" x=\"" << left
      << "\" y=\"14\">Offsets of the first " << memory.first_bad.size() << " of " << memory.bad_words
      << " bad words</text><rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << width << "\" height=\"" << strip
      << "\" fill=\"#f2f2f2\" stroke=\"#888\"/>";
  for (const BadWord& w : memory.first_bad) {
    const double x = left + width * std::min(1.0, static_cast<double>(w.offset) / bytes);
    out << "<line class=\"bad-word\" data-offset=\"" << w.offset << "\" x1=\"" << fixed(x, 1) << "\" x2=\""
        << fixed(x, 1) << "\" y1=\"" << top << "\" y2=\"" << top + strip << "\" stroke=\"#b10026\" stroke-width=\"2\">"
        << "<title>offset " << w.offset << " (" << to_string(w.pattern) << ")</title></line>";
  }
  out << "<text class=\"tick\" x=\"" << left << "\" y=\"" << top + strip + 14 << "\">0</text><text class=\"tick\" x=\""
      << left + width << "\" y=\"" << top + strip + 14 << "\" text-anchor=\"end\">" << escape(si(bytes, "B"))
      << "</text></svg>";
  return out.str();
}

// At most this many failing results per device are drawn in full; every one keeps its replay
// command. A long diag on a broken device fails thousands of iterations the same way.
constexpr std::size_t k_drawn_failures = 12;

std::string failure(const ProbeResult& r) {
  std::ostringstream out;
  out << "<section class=\"failure\"><h4>" << escape(spec_key(r.spec)) << " seed " << r.spec.seed
      << (r.drill() ? " <span class=\"drill\">DRILL (injected fault)</span>" : "") << "</h4>";
  if (!r.error.empty()) out << "<p>Hardware evidence: " << escape(r.error) << "</p>";
  out << "<p>" << r.check.mismatched << " of " << r.check.checked << " elements wrong";
  if (r.memory) out << "; memory: " << r.memory->bad_words << " bad words of " << r.memory->bytes_tested << " bytes";
  out << "</p><div class=\"figures\">";
  if (!r.check.mismatch_map.counts.empty()) {
    out << heatmap(r);
  } else if (r.memory) {
    out << offset_strip(*r.memory);
  } else {
    out << "<p class=\"missing\">No mismatch positions in this result (none found, or written before "
           "check.mismatch_map existed).</p>";
  }
  out << bit_histogram(r.memory ? r.memory->flipped_bits : r.check.flipped_bits) << "</div>";
  if (!r.check.first_mismatches.empty()) {
    out << "<table class=\"mismatches\"><tr><th>element</th><th>row</th><th>col</th><th>expected</th><th>actual</th>"
           "<th>xor</th></tr>";
    for (const Mismatch& m : r.check.first_mismatches) {
      char values[128];
      std::snprintf(values, sizeof values, "<td>%.9g</td><td>%.9g</td><td>0x%08x</td>", m.expected, m.actual,
                    m.xor_bits);
      out << "<tr><td>" << m.index << "</td><td>" << m.row << "</td><td>" << m.col << "</td>" << values << "</tr>";
    }
    out << "</table>";
  }
  if (r.memory && !r.memory->first_bad.empty()) {
    out << "<table class=\"mismatches\"><tr><th>offset</th><th>pattern</th><th>xor</th><th>persistence</th></tr>";
    for (const BadWord& w : r.memory->first_bad) {
      char line[96];
      std::snprintf(line, sizeof line, "<tr><td>0x%llx</td><td>%s</td><td>0x%08x</td><td>%s</td></tr>",
                    static_cast<unsigned long long>(w.offset), to_string(w.pattern), w.expected ^ w.actual,
                    persistence(w));
      out << line;
    }
    out << "</table>";
  }
  out << "<p>Replay:</p><pre class=\"replay\">" << escape(replay_command(r)) << "</pre></section>";
  return out.str();
}

std::string device_title(const DeviceSection& d) { return escape(d.name) + " (" + escape(d.id) + ")"; }

std::string share_text(const std::optional<double>& share) { return share ? fixed(100.0 * *share, 1) + "%" : "-"; }

const char* k_style =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;"
    "margin-top:32px}h3{font-size:15px}h4{font-size:14px;margin:8px 0}"
    ".meta{color:#555}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;font-size:13px}th{background:#f4f4f4}"
    ".verdict{font-weight:bold;padding:1px 8px;border-radius:3px;color:#fff}"
    ".v-pass{background:#2ca02c}.v-fail{background:#d62728}.v-error{background:#ff7f0e}.v-skipped{background:#999}"
    ".banner{background:#fff3cd;border:1px solid #e0c068;padding:6px 10px}"
    ".missing{color:#777;font-style:italic}.drill{color:#9467bd;font-size:12px}"
    "svg{display:block;margin:6px 0}.figures{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}"
    ".figures svg{display:inline-block}"
    ".chart-title{font-size:13px;font-weight:bold;fill:#222}.tick{font-size:11px;fill:#555}"
    ".legend{font-size:11px;text-anchor:end}.grid{stroke:#eee}.axis{stroke:#888}.series{stroke-width:1.5}"
    ".marker{fill:#d62728;stroke:#fff}"
    "pre.replay{background:#f6f6f6;border:1px solid #ddd;padding:6px;white-space:pre-wrap;font-size:12px}"
    ".failure{border-left:3px solid #d62728;padding-left:12px;margin:12px 0}";

std::string render(const Diag& diag) {
  std::ostringstream out;
  const std::string title =
      diag.level ? "substrated diag, level " + std::to_string(*diag.level) : "substrated probe run";
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>" << escape(title)
      << "</title><style>" << k_style << "</style></head><body><h1>" << escape(title) << "</h1><p class=\"meta\">";
  out << "Started " << when(diag.started_at) << ", finished " << when(diag.finished_at);
  if (diag.duration) out << ", " << fixed(*diag.duration, 1) << " s";
  if (diag.exit_code) {
    const char* meaning = *diag.exit_code == 0 ? "pass" : *diag.exit_code == 1 ? "fault found" : "could not run";
    out << "; exit code " << *diag.exit_code << " (" << meaning << ")";
  }
  out << "</p>";
  if (diag.interrupted) out << "<p class=\"banner\">Interrupted: this report covers the run up to the stop.</p>";
  out << "<h2>Summary</h2><table class=\"summary\"><tr><th>device</th><th>UUID</th><th>verdict</th><th>iterations</th>"
         "<th>failures</th><th>peer throughput share</th></tr>";
  for (const DeviceSection& d : diag.devices) {
    out << "<tr><td>" << device_title(d) << "</td><td>" << escape(d.uuid) << "</td><td><span class=\"verdict v-"
        << d.verdict << "\">" << d.verdict << "</span></td><td>" << d.iterations << "</td><td>" << d.failed_iterations
        << "</td><td>" << share_text(d.peer_share) << "</td></tr>";
  }
  out << "</table>";
  if (diag.devices.empty()) out << "<p class=\"missing\">No devices in this input.</p>";
  for (const DeviceSection& d : diag.devices) {
    out << "<section class=\"device\"><h2>" << device_title(d) << " <span class=\"verdict v-" << d.verdict << "\">"
        << d.verdict << "</span></h2><p class=\"meta\">" << escape(d.backend) << ", driver " << escape(d.driver)
        << (d.pci_bus_id.empty() ? "" : ", PCI " + escape(d.pci_bus_id)) << "</p><h3>Timelines</h3>" << timelines(d);
    std::vector<const ProbeResult*> failing;
    for (const ProbeResult& r : d.results) {
      if (r.status == RunStatus::fail) failing.push_back(&r);
    }
    if (!failing.empty()) {
      out << "<h3>Failures (" << failing.size() << ")</h3>";
      for (std::size_t i = 0; i < failing.size() && i < k_drawn_failures; ++i) out << failure(*failing[i]);
      if (failing.size() > k_drawn_failures) {
        out << "<p>Replay commands of the other " << failing.size() - k_drawn_failures
            << " failing runs:</p><pre class=\"replay\">";
        for (std::size_t i = k_drawn_failures; i < failing.size(); ++i)
          out << escape(replay_command(*failing[i])) << "\n";
        out << "</pre>";
      }
    }
    bool heading = false;
    for (const ProbeResult& r : d.results) {
      if (r.status != RunStatus::error && r.status != RunStatus::hung && r.status != RunStatus::crashed) continue;
      if (!heading) out << "<h3>Runs that could not run</h3><ul>";
      heading = true;
      out << "<li>" << escape(spec_key(r.spec)) << " seed " << r.spec.seed << ": " << to_string(r.status) << ": "
          << escape(r.error) << "</li>";
    }
    if (heading) out << "</ul>";
    out << "</section>";
  }
  out << "</body></html>\n";
  return out.str();
}

// Work of one run of a spec, for the throughput of a wrapped probe result; 0 when unknown.
double flops(const ProbeSpec& spec) {
  if (spec.probe == "gemm") return 2.0 * spec.gemm.m * spec.gemm.n * spec.gemm.k;
  if (spec.probe == "attention") {
    const AttentionShape& a = spec.attention;
    // QK^T and PV: 2 * 2 * seq^2 * head_dim per head; a causal mask computes about half.
    return 4.0 * a.heads * static_cast<double>(a.seq_len) * a.seq_len * a.head_dim * (a.causal ? 0.5 : 1.0);
  }
  return 0.0;
}

}  // namespace

Expected<nlohmann::json> diag_from_probe_results(const nlohmann::json& document) {
  if (!document.is_object() || !document.contains("results") || !document.at("results").is_array()) {
    return Error{ErrorKind::invalid_argument, "expected {\"diag\": {...}} or {\"results\": [...]}"};
  }
  std::vector<ProbeResult> results;
  const json& list = document.at("results");
  for (std::size_t i = 0; i < list.size(); ++i) {
    try {
      results.push_back(list[i].get<ProbeResult>());
    } catch (const json::exception& e) {
      return Error{ErrorKind::invalid_argument, "results[" + std::to_string(i) + "]: " + parser_message(e)};
    }
  }
  double start = INFINITY, end = -INFINITY;
  for (const ProbeResult& r : results) {
    start = std::min(start, r.finished_at);
    end = std::max(end, r.finished_at);
  }
  json devices = json::array();
  std::map<std::string, std::size_t> index;
  std::map<std::string, std::map<std::string, std::uint64_t>> iteration;  // per device, per probe
  for (std::size_t i = 0; i < results.size(); ++i) {
    const ProbeResult& r = results[i];
    auto [it, added] = index.emplace(r.device.id, devices.size());
    if (added) {
      devices.push_back({{"device", r.device},
                         {"verdict", "skipped"},
                         {"iterations", 0},
                         {"failed_iterations", 0},
                         {"peer_throughput_share", nullptr},
                         {"results", json::array()},
                         {"timeline", json::array()}});
    }
    json& d = devices[it->second];
    d["results"].push_back(list[i]);
    if (r.status == RunStatus::skipped) continue;
    d["iterations"] = d["iterations"].get<std::uint64_t>() + 1;
    const std::string verdict = d["verdict"].get<std::string>();
    if (r.status == RunStatus::fail) {
      d["failed_iterations"] = d["failed_iterations"].get<std::uint64_t>() + 1;
      d["verdict"] = "fail";
    } else if (r.status != RunStatus::pass && verdict != "fail") {
      d["verdict"] = "error";
    } else if (verdict == "skipped") {
      d["verdict"] = "pass";
    }
    json throughput = nullptr;
    if (r.memory && r.memory->bandwidth_bytes_per_second > 0) {
      throughput = r.memory->bandwidth_bytes_per_second;
    } else if (flops(r.spec) > 0 && r.device_seconds > 0) {
      throughput = flops(r.spec) / r.device_seconds;
    }
    d["timeline"].push_back({{"t_seconds", r.finished_at - start},
                             {"probe", spec_key(r.spec)},
                             {"iteration", iteration[r.device.id][spec_key(r.spec)]++},
                             {"status", to_string(r.status)},
                             {"throughput", throughput},
                             {"temperature_celsius", nullptr},
                             {"sm_clock_hertz", nullptr},
                             {"power_watts", nullptr},
                             {"throttle_reasons", json::array()}});
  }
  return json{{"diag",
               {{"level", nullptr},
                {"duration_seconds", results.empty() ? json(nullptr) : json(end - start)},
                {"started_at", results.empty() ? json(nullptr) : json(start)},
                {"finished_at", results.empty() ? json(nullptr) : json(end)},
                {"interrupted", false},
                {"exit_code", nullptr},
                {"devices", devices}}}};
}

Expected<nlohmann::json> read_report_input(const std::string& path) {
  auto contents = read_file(path, k_report_input_max_bytes);
  if (!contents) return contents.error().to_error();
  json document;
  try {
    document = json::parse(*contents);
  } catch (const json::exception& e) {
    return Error{ErrorKind::invalid_argument, path + ": not JSON: " + parser_message(e)};
  }
  if (document.is_object() && document.contains("diag")) return document;
  auto wrapped = diag_from_probe_results(document);
  if (!wrapped) return Error{ErrorKind::invalid_argument, path + ": " + wrapped.error().message};
  return wrapped;
}

Expected<std::string> render_diag_report(const nlohmann::json& document) {
  try {
    return render(parse_diag(document));
  } catch (const InputError& e) {
    return Error{ErrorKind::invalid_argument, e.message};
  }
}

Status write_diag_report(const nlohmann::json& document, const std::string& path) {
  TRY_ASSIGN(const std::string html, render_diag_report(document));
  return write_file_atomic(path, html);
}

}  // namespace substrate
