#pragma once
// Whole-file reads with POSIX calls, because an iostream turns a failing read (EIO from a GPU in
// reset) into a quiet end of file. A failure keeps the failed step and errno so each caller can
// word its own message and error kind.
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <variant>

namespace substrate {

struct ReadFileError {
  enum class Step { open, read, too_large };
  Step step;
  int error_number;     // errno of the failed open() or read(); 0 for too_large
  std::string message;  // "cannot open|cannot read <path>: <strerror>" or "<path>: larger than <max> bytes"
};

// Expected<std::string> in shape (kernels/expected.hpp), but its error keeps the step and errno
// that Error's message would flatten.
class [[nodiscard]] ReadFileResult {
 public:
  ReadFileResult(std::string contents) : state_(std::move(contents)) {}
  ReadFileResult(ReadFileError error) : state_(std::move(error)) {}

  explicit operator bool() const { return state_.index() == 0; }
  std::string& operator*() { return std::get<0>(state_); }
  const ReadFileError& error() const { return std::get<1>(state_); }

 private:
  std::variant<std::string, ReadFileError> state_;
};

// The whole file; fails with Step::too_large as soon as more than `max_bytes` have been read.
ReadFileResult read_file(const std::string& path,
                         std::size_t max_bytes = std::numeric_limits<std::size_t>::max());

}  // namespace substrate
