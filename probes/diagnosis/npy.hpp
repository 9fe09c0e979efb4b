#pragma once
// A small NumPy .npy (format 1.0) writer and reader for the diagnosis tools. Only what the dumps
// need: little-endian float32 ('<f4') and float64 ('<f8'), C order, any rank. The reader
// validates everything (magic, version, header dictionary, dtype, shape, payload size) and
// reports a broken file as ErrorKind::corrupt with the reason; numpy's np.load reads our files.
#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace substrate::npy {

enum class ElementType { f32, f64 };
const char* descr(ElementType type);  // "<f4", "<f8"
std::size_t element_size(ElementType type);

// One array held as float64 values regardless of its stored type: float32 widens exactly, so
// static_cast<float>(value) gives back the stored bits.
struct Array {
  ElementType type = ElementType::f64;
  std::vector<std::uint64_t> shape;
  std::vector<double> values;  // row-major
  std::uint64_t count() const;
};

// The bytes of a .npy file holding `shape` and the given values. Throws nothing; the caller
// checks that the count matches the shape (invalid_argument otherwise).
Expected<std::string> encode_f32(const std::vector<std::uint64_t>& shape, const std::vector<float>& values);
Expected<std::string> encode_f64(const std::vector<std::uint64_t>& shape, const std::vector<double>& values);

// Parses .npy bytes; `name` is used in error messages. corrupt: bad magic, unsupported
// version, malformed header, unsupported dtype or Fortran order, truncated or oversized payload.
Expected<Array> decode(const std::string& bytes, const std::string& name);

// Reads and decodes a .npy file (common/file_io.hpp reads it): io_error when it cannot be read,
// corrupt as for decode().
Expected<Array> read_file(const std::string& path);

std::string shape_text(const std::vector<std::uint64_t>& shape);  // "(2, 3)"

}  // namespace substrate::npy
