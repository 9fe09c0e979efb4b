#pragma once
// Whole-file reads and writes with POSIX calls, the one module for them: an iostream turns a
// failing read (EIO from a GPU in reset) into a quiet end of file, and says nothing of which step
// failed. Reads open without blocking and refuse anything that is not a regular file, so a FIFO
// or device node put in place of a config, state or sysfs file cannot wedge the caller.
#include <cstddef>
#include <limits>
#include <string>

#include "common/expected.hpp"

namespace substrate {

struct ReadFileError {
  enum class Step { open, not_regular, read, too_large };
  Step step;
  int error_number;     // errno of the failed open() or read(); 0 for not_regular and too_large
  std::string message;  // "cannot open|cannot read <path>: <strerror>", "<path>: not a regular file
                        // (a FIFO)", "<path>: larger than <max> bytes"
  // For callers that need no more than the message: an io_error with it.
  Error to_error() const { return Error{ErrorKind::io_error, message}; }
};

// The error keeps the step and errno that Error's message would flatten.
using ReadFileResult = Expected<std::string, ReadFileError>;

// The whole file; fails with Step::not_regular for a FIFO, socket, device or directory, and with
// Step::too_large as soon as more than `max_bytes` have been read.
ReadFileResult read_file(const std::string& path, std::size_t max_bytes = std::numeric_limits<std::size_t>::max());

// Writes `contents` to `path` (created with mode 0640, or truncated). io_error names the path,
// the step and errno; a partial file may remain on failure.
Status write_file(const std::string& path, const std::string& contents);

// Writes `contents` to `path` atomically: to "<path>.tmp.<pid>", fsync, rename over `path`, fsync
// the directory, so a reader sees the old file or the new one, never a mix, even after a crash.
// Temp files left by writers that no longer exist are removed first. io_error on failure; the
// old file is then untouched. Serialised within the process.
Status write_file_atomic(const std::string& path, const std::string& contents);

// Removes "<path>.tmp.<pid>" files left by write_file_atomic callers that no longer exist (a crash,
// a kill -9); a live writer's temp file is left alone. Never fails: what cannot be removed stays.
void remove_stale_temp_files(const std::string& path);

}  // namespace substrate
