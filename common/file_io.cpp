#include "common/file_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace substrate {
namespace {

Error io_error(const std::string& what, int error) {
  return Error{ErrorKind::io_error, what + ": " + std::strerror(error)};
}

const char* file_type(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISDIR(mode)) return "a directory";
  return "not a plain file";
}

std::string parent_directory(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t wrote = ::write(fd, data, size);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      if (wrote == 0) errno = EIO;
      return false;
    }
    data += wrote;
    size -= static_cast<std::size_t>(wrote);
  }
  return true;
}

int fsync_retry(int fd) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

void remove_stale_temp_files(const std::string& path) {
  const std::string prefix = std::filesystem::path(path).filename().string() + ".tmp.";
  const std::string directory = parent_directory(path);
  DIR* dir = ::opendir(directory.c_str());
  if (!dir) return;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    long long pid = 0;
    auto [ptr, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
    if (ec != std::errc{} || ptr != pid_text.data() + pid_text.size() || pid <= 0) continue;
    if (pid == self) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) continue;  // still alive
    ::unlink((directory + "/" + name).c_str());
  }
  ::closedir(dir);
}

ReadFileResult read_file(const std::string& path, std::size_t max_bytes) {
  auto failed = [&](ReadFileError::Step step, const char* verb, int error) {
    return ReadFileError{step, error, std::string(verb) + " " + path + ": " + std::strerror(error)};
  };
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return failed(ReadFileError::Step::open, "cannot open", errno);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return failed(ReadFileError::Step::open, "cannot stat", error);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return ReadFileError{ReadFileError::Step::not_regular, 0,
                         path + ": not a regular file (" + file_type(info.st_mode) + ")"};
  }
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

Status write_file(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return io_error("cannot create " + path, errno);
  if (!write_all(fd, contents.data(), contents.size())) {
    const int error = errno;
    ::close(fd);
    return io_error("cannot write " + path, error);
  }
  if (::close(fd) != 0) return io_error("cannot close " + path, errno);
  return ok_status();
}

Status write_file_atomic(const std::string& path, const std::string& contents) {
  // One writer at a time in this process: the temp name carries only the pid.
  static std::mutex write_mutex;
  std::lock_guard lock(write_mutex);
  remove_stale_temp_files(path);

  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return io_error("cannot create " + temp, errno);
  auto abandon = [&](const std::string& what) {
    const int error = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return io_error(what, error);
  };
  if (!write_all(fd, contents.data(), contents.size())) return abandon("cannot write " + temp);
  if (fsync_retry(fd) != 0) return abandon("cannot fsync " + temp);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return io_error("cannot close " + temp, error);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return io_error("cannot rename " + temp + " to " + path, error);
  }
  // Make the rename itself durable.
  const std::string directory = parent_directory(path);
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return io_error("cannot open directory " + directory, errno);
  const int rc = fsync_retry(dir_fd);
  const int error = errno;
  ::close(dir_fd);
  if (rc != 0 && error != EINVAL) return io_error("cannot fsync directory " + directory, error);
  return ok_status();
}

}  // namespace substrate
