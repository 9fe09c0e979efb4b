#pragma once
// Shared by the HTTP server and control socket tests: an io_context running on its own thread,
// and the blocking socket I/O their raw clients use.
#include <sys/socket.h>
#include <sys/time.h>

#include <future>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace substrate::testing {

// Runs an io_context on a thread until destroyed; servers are started and stopped on it, as the
// daemon's loop does.
class LoopThread {
 public:
  LoopThread() : thread_([this] { io_.run(); }) {}
  ~LoopThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  boost::asio::io_context& io() { return io_; }

  // Runs `f` on the loop thread and waits for it.
  template <class F>
  void on_loop(F f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{io_.get_executor()};
  std::thread thread_;
};

// A server that stops answering fails the test after 5 s instead of hanging it.
inline void set_io_timeouts(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// False when the peer stopped taking data (closed, reset or timed out).
inline bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

// Everything until the peer closes (or the receive timeout).
inline std::string receive_until_closed(int fd) {
  std::string in;
  char chunk[65536];
  for (;;) {
    auto n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    in.append(chunk, static_cast<std::size_t>(n));
  }
  return in;
}

}  // namespace substrate::testing
