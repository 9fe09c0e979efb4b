#pragma once
// Whole-file reads with POSIX calls, because an iostream turns a failing read (EIO from a GPU in
// reset) into a quiet end of file. A failure keeps the failed step and errno so each caller can
// word its own message and error kind.
#include <cstddef>
#include <limits>
#include <string>

#include "kernels/expected.hpp"

namespace substrate {

struct ReadFileError {
  enum class Step { open, read, too_large };
  Step step;
  int error_number;     // errno of the failed open() or read(); 0 for too_large
  std::string message;  // "cannot open|cannot read <path>: <strerror>" or "<path>: larger than <max> bytes"
};

// The error keeps the step and errno that Error's message would flatten.
using ReadFileResult = Expected<std::string, ReadFileError>;

// The whole file; fails with Step::too_large as soon as more than `max_bytes` have been read.
ReadFileResult read_file(const std::string& path,
                         std::size_t max_bytes = std::numeric_limits<std::size_t>::max());

}  // namespace substrate
