#include "kernels/spec.hpp"

#include <charconv>
#include <cstdint>
#include <sstream>

namespace substrate {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return "invalid_argument";
    case ErrorKind::unavailable:
      return "unavailable";
    case ErrorKind::device_error:
      return "device_error";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::io_error:
      return "io_error";
    case ErrorKind::corrupt:
      return "corrupt";
    case ErrorKind::out_of_memory:
      return "out_of_memory";
    case ErrorKind::busy:
      return "busy";
    case ErrorKind::hardware_fault:
      return "hardware_fault";
  }
  return "unknown";
}

const char* to_string(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32:
      return "f32";
    case Dtype::f16:
      return "f16";
    case Dtype::bf16:
      return "bf16";
  }
  return "?";
}

const char* to_string(Mode mode) { return mode == Mode::exact ? "exact" : "random"; }

std::optional<Dtype> parse_dtype(const std::string& text) {
  if (text == "f32" || text == "fp32") return Dtype::f32;
  if (text == "f16" || text == "fp16") return Dtype::f16;
  if (text == "bf16") return Dtype::bf16;
  return std::nullopt;
}

std::optional<Mode> parse_mode(const std::string& text) {
  if (text == "exact") return Mode::exact;
  if (text == "random") return Mode::random;
  return std::nullopt;
}

unsigned storage_bits(Dtype dtype) { return dtype == Dtype::f32 ? 32 : 16; }

unsigned mantissa_bits(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32:
      return 23;
    case Dtype::f16:
      return 10;
    case Dtype::bf16:
      return 7;
  }
  return 23;
}

namespace {

bool parse_u64(const std::string& text, std::uint64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end && !text.empty();
}

}  // namespace

Expected<Injection> parse_injection(const std::string& text, std::uint64_t row_length) {
  Injection inject;
  inject.enabled = true;
  std::optional<std::uint64_t> row, col, element;
  std::stringstream tokens(text);
  std::string token;
  auto bad = [&](const std::string& why) {
    return Error{ErrorKind::invalid_argument, "--inject '" + text + "': " + why};
  };
  while (std::getline(tokens, token, ',')) {
    if (token == "transient") {
      inject.transient = true;
      continue;
    }
    const auto eq = token.find('=');
    if (eq == std::string::npos) return bad("expected key=value, got '" + token + "'");
    const std::string key = token.substr(0, eq);
    if (token == "count=all") {
      inject.count = k_inject_to_end;
      continue;
    }
    std::uint64_t value = 0;
    if (!parse_u64(token.substr(eq + 1), value)) return bad("'" + token + "' needs a non-negative integer");
    if (key == "bit") {
      if (value > 31) return bad("bit must be 0..31, got " + std::to_string(value));
      inject.xor_mask |= 1u << value;
    } else if (key == "row") {
      row = value;
    } else if (key == "col") {
      col = value;
    } else if (key == "element") {
      element = value;
    } else if (key == "count" || key == "stride") {
      if (value == 0) return bad(key + " must be at least 1");
      (key == "count" ? inject.count : inject.stride) = value;
    } else if (key == "layer") {
      if (value > 1000) return bad("layer must be 0..1000, got " + std::to_string(value));
      inject.layer = static_cast<std::uint32_t>(value);
    } else {
      return bad("unknown key '" + key + "' (use bit, row, col, element, count, stride, layer, transient)");
    }
  }
  if (inject.xor_mask == 0) return bad("at least one bit=N is required");
  if (inject.stride != 1 && inject.count == 1) return bad("stride needs count=N or count=all");
  if (element && (row || col)) return bad("give either element or row/col, not both");
  if (col && row_length > 0 && *col >= row_length) {
    return bad("col " + std::to_string(*col) + " is outside a row of " + std::to_string(row_length));
  }
  if (row && row_length > 0 && *row > (UINT64_MAX - col.value_or(0)) / row_length) {
    // R*row_length+C would wrap around and name another element: no output has that many rows.
    return bad("row " + std::to_string(*row) + " is outside the output (rows of " + std::to_string(row_length) +
               " elements)");
  }
  inject.element = element ? *element : row.value_or(0) * row_length + col.value_or(0);
  return inject;
}

bool injection_hits(const Injection& inject, std::uint64_t index) {
  if (!inject.enabled || index < inject.element) return false;
  const std::uint64_t offset = index - inject.element;
  return offset % inject.stride == 0 && offset / inject.stride < inject.count;
}

Status check_injection_range(const Injection& inject, std::uint64_t elements, const std::string& probe) {
  if (!inject.enabled) return ok_status();
  const auto outside = [&](std::uint64_t element) {
    return Error{ErrorKind::invalid_argument, probe + ": injected element " + std::to_string(element) +
                                                  " is outside the output (" + std::to_string(elements) + " elements)"};
  };
  if (inject.element >= elements) return outside(inject.element);
  if (inject.count == k_inject_to_end) return ok_status();
  // The last element, without overflow: (count - 1) * stride beyond the first.
  const std::uint64_t room = elements - 1 - inject.element;
  if (inject.count - 1 > room / inject.stride) {
    return Error{ErrorKind::invalid_argument, probe + ": the drill's " + std::to_string(inject.count) + " elements " +
                                                  std::to_string(inject.stride) + " apart from element " +
                                                  std::to_string(inject.element) + " run past the output (" +
                                                  std::to_string(elements) +
                                                  " elements); use a smaller count or count=all"};
  }
  return ok_status();
}

}  // namespace substrate
