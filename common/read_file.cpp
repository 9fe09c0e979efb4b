#include "common/read_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace substrate {

ReadFileResult read_file(const std::string& path, std::size_t max_bytes) {
  auto failed = [&](ReadFileError::Step step, const char* verb, int error) {
    return ReadFileError{step, error, std::string(verb) + " " + path + ": " + std::strerror(error)};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed(ReadFileError::Step::open, "cannot open", errno);
  std::string contents;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      return failed(ReadFileError::Step::read, "cannot read", error);
    }
    if (got == 0) break;
    contents.append(buffer, static_cast<std::size_t>(got));
    if (contents.size() > max_bytes) {
      ::close(fd);
      return ReadFileError{ReadFileError::Step::too_large, 0,
                           path + ": larger than " + std::to_string(max_bytes) + " bytes"};
    }
  }
  ::close(fd);
  return contents;
}

}  // namespace substrate
