#include "probes/diagnosis/npy.hpp"

#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <sstream>

#include "common/file_io.hpp"

namespace substrate::npy {
namespace {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian host");

constexpr char k_magic[] = "\x93NUMPY";
constexpr std::size_t k_magic_size = 6;
constexpr std::size_t k_alignment = 64;  // numpy pads the preamble to a multiple of 64 bytes

Error corrupt(const std::string& name, const std::string& why) {
  return Error{ErrorKind::corrupt, name + ": not a valid .npy file: " + why};
}

std::string header(ElementType type, const std::vector<std::uint64_t>& shape) {
  std::string dict =
      std::string("{'descr': '") + descr(type) + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  // magic(6) + version(2) + length(2) + dict + padding + '\n' must be a multiple of 64.
  const std::size_t unpadded = k_magic_size + 2 + 2 + dict.size() + 1;
  dict.append((k_alignment - unpadded % k_alignment) % k_alignment, ' ');
  dict.push_back('\n');
  std::string out(k_magic, k_magic_size);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(dict.size() & 0xFF));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xFF));
  return out + dict;
}

Expected<std::uint64_t> checked_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  for (std::uint64_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / 16 / dim) {
      return Error{ErrorKind::invalid_argument, "shape " + shape_text(shape) + " is too large"};
    }
    count *= dim;
  }
  return count;
}

template <class T>
Expected<std::string> encode(ElementType type, const std::vector<std::uint64_t>& shape, const std::vector<T>& values) {
  TRY_ASSIGN(auto count, checked_count(shape));
  if (count != values.size()) {
    return Error{ErrorKind::invalid_argument, "npy: shape " + shape_text(shape) + " holds " + std::to_string(count) +
                                                  " elements, got " + std::to_string(values.size())};
  }
  std::string out = header(type, shape);
  const std::size_t offset = out.size();
  out.resize(offset + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data() + offset, values.data(), values.size() * sizeof(T));
  return out;
}

// A minimal parser for the header's Python dict literal: string keys, and values that are
// strings, True/False, or tuples of non-negative integers.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  bool parse(std::string& descr_out, bool& fortran, std::vector<std::uint64_t>& shape, std::string& why) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip();
    if (!eat('{')) return fail(why, "header does not start with '{'");
    while (true) {
      skip();
      if (eat('}')) break;
      std::string key;
      if (!string(key)) return fail(why, "expected a quoted key");
      skip();
      if (!eat(':')) return fail(why, "expected ':' after '" + key + "'");
      skip();
      if (key == "descr") {
        if (!string(descr_out)) return fail(why, "'descr' is not a string");
        have_descr = true;
      } else if (key == "fortran_order") {
        if (word("True"))
          fortran = true;
        else if (word("False"))
          fortran = false;
        else
          return fail(why, "'fortran_order' is not True or False");
        have_fortran = true;
      } else if (key == "shape") {
        if (!tuple(shape)) return fail(why, "'shape' is not a tuple of integers");
        have_shape = true;
      } else {
        return fail(why, "unexpected key '" + key + "'");
      }
      skip();
      if (eat(',')) continue;
      skip();
      if (eat('}')) break;
      return fail(why, "expected ',' or '}' in the header");
    }
    skip();
    if (pos_ != text_.size()) return fail(why, "trailing characters after the header dict");
    if (!have_descr || !have_fortran || !have_shape) return fail(why, "header lacks descr, fortran_order or shape");
    return true;
  }

 private:
  static bool fail(std::string& why, const std::string& text) {
    why = text;
    return false;
  }
  void skip() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t')) ++pos_;
  }
  bool eat(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool word(std::string_view w) {
    if (text_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  bool string(std::string& out) {
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return false;
    const char quote = text_[pos_++];
    const std::size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) return false;
    out = std::string(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }
  bool tuple(std::vector<std::uint64_t>& out) {
    out.clear();
    if (!eat('(')) return false;
    while (true) {
      skip();
      if (eat(')')) return true;
      if (pos_ >= text_.size() || !std::isdigit(static_cast<unsigned char>(text_[pos_]))) return false;
      std::uint64_t value = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        const std::uint64_t digit = static_cast<std::uint64_t>(text_[pos_] - '0');
        if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
        value = value * 10 + digit;
        ++pos_;
      }
      // numpy writes 3L on Python 2; tolerate the suffix.
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
      out.push_back(value);
      skip();
      if (eat(',')) continue;
      skip();
      return eat(')');
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

const char* descr(ElementType type) { return type == ElementType::f32 ? "<f4" : "<f8"; }
std::size_t element_size(ElementType type) { return type == ElementType::f32 ? 4 : 8; }

std::uint64_t Array::count() const {
  std::uint64_t n = 1;
  for (std::uint64_t dim : shape) n *= dim;
  return n;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

Expected<std::string> encode_f32(const std::vector<std::uint64_t>& shape, const std::vector<float>& values) {
  return encode(ElementType::f32, shape, values);
}

Expected<std::string> encode_f64(const std::vector<std::uint64_t>& shape, const std::vector<double>& values) {
  return encode(ElementType::f64, shape, values);
}

Expected<Array> decode(const std::string& bytes, const std::string& name) {
  if (bytes.size() < k_magic_size + 4 || bytes.compare(0, k_magic_size, k_magic, k_magic_size) != 0) {
    return corrupt(name, bytes.empty() ? "the file is empty" : "missing the \\x93NUMPY magic");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_length = 0, preamble = 0;
  auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i])); };
  if (major == 1) {
    header_length = byte(8) | byte(9) << 8;
    preamble = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return corrupt(name, "truncated preamble");
    header_length = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    preamble = 12;
  } else {
    return corrupt(name, "unsupported format version " + std::to_string(major) + "." + std::to_string(byte(7)));
  }
  if (bytes.size() < preamble + header_length) {
    return corrupt(name, "truncated header (" + std::to_string(bytes.size()) + " bytes, header needs " +
                             std::to_string(preamble + header_length) + ")");
  }
  std::string descr_text, why;
  bool fortran = false;
  Array array;
  HeaderParser parser(std::string_view(bytes).substr(preamble, header_length));
  if (!parser.parse(descr_text, fortran, array.shape, why)) return corrupt(name, why);
  if (descr_text == "<f4") {
    array.type = ElementType::f32;
  } else if (descr_text == "<f8") {
    array.type = ElementType::f64;
  } else {
    return Error{ErrorKind::corrupt, name + ": unsupported dtype '" + descr_text +
                                         "' (only little-endian float32 '<f4' and float64 '<f8')"};
  }
  if (fortran) return Error{ErrorKind::corrupt, name + ": Fortran-ordered arrays are not supported"};
  auto count = checked_count(array.shape);
  if (!count) return corrupt(name, count.error().message);
  const std::size_t size = element_size(array.type);
  const std::uint64_t payload = bytes.size() - preamble - header_length;
  if (payload != *count * size) {
    return corrupt(name, std::string(payload < *count * size ? "truncated" : "oversized") + " payload: shape " +
                             shape_text(array.shape) + " of " + descr_text + " needs " + std::to_string(*count * size) +
                             " bytes, the file has " + std::to_string(payload));
  }
  array.values.resize(*count);
  const char* data = bytes.data() + preamble + header_length;
  for (std::uint64_t i = 0; i < *count; ++i) {
    if (array.type == ElementType::f32) {
      float value;
      std::memcpy(&value, data + i * 4, 4);
      array.values[i] = value;
    } else {
      std::memcpy(&array.values[i], data + i * 8, 8);
    }
  }
  return array;
}

Expected<Array> read_file(const std::string& path) {
  auto bytes = substrate::read_file(path);
  if (!bytes) return Error{ErrorKind::io_error, bytes.error().message};
  return decode(*bytes, path);
}

}  // namespace substrate::npy
