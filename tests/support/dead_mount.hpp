#pragma once
// A directory whose every access blocks, as a sysfs attribute does when its driver never
// answers: a FUSE mount whose server never replies (not even to FUSE_INIT), so each lookup, stat
// or read under it waits in the kernel (killably). Needs CAP_SYS_ADMIN and /dev/fuse; where the
// mount is refused, error() says why and tests skip with that reason. The destructor detaches
// the mount and closes the connection, which fails the waiting calls with ENOTCONN.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace substrate::testing {

class DeadMount {
 public:
  explicit DeadMount(const std::filesystem::path& directory) : directory_(directory) {
    fd_ = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd_ < 0) {
      error_ = std::string("cannot open /dev/fuse: ") + std::strerror(errno);
      return;
    }
    const std::string options = "fd=" + std::to_string(fd_) + ",rootmode=40000,user_id=0,group_id=0";
    if (::mount("substrate-dead", directory_.c_str(), "fuse", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      error_ = "cannot mount FUSE on " + directory_.string() + ": " + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~DeadMount() { release(); }
  DeadMount(const DeadMount&) = delete;
  DeadMount& operator=(const DeadMount&) = delete;

  // Empty when mounted.
  const std::string& error() const { return error_; }

  // Ends the blocking: what waits under the mount fails, and the directory is the plain one again.
  void release() {
    if (fd_ < 0) return;
    ::umount2(directory_.c_str(), MNT_DETACH);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  std::filesystem::path directory_;
  int fd_ = -1;
  std::string error_;
};

}  // namespace substrate::testing
