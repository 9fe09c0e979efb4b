// The control socket: server on the daemon's event loop (Asio local stream sockets), client with
// plain blocking-free POSIX calls and poll() deadlines so the CLI needs no event loop.
#include "daemon/control_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace substrate {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using error_code = boost::system::error_code;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t k_max_reply_bytes = 64u * 1024 * 1024;

std::string errno_text(int err) { return std::strerror(err); }

std::string dump(const json& value) {
  // Replace invalid UTF-8 (e.g. echoed client bytes) instead of throwing.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json error_reply(std::string message) { return json{{"ok", false}, {"error", std::move(message)}}; }

Clock::duration to_duration(double seconds) {
  if (!(seconds > 0.001)) seconds = 0.001;
  if (seconds > 86400.0) seconds = 86400.0;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

bool path_fits(const std::string& path) { return !path.empty() && path.size() < sizeof(sockaddr_un{}.sun_path); }

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Is something accepting connections at `path`? 1 yes, 0 no (refused), -errno when unknown.
int probe_listener(const std::string& path) {
  FileDescriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return -errno;
  auto address = unix_address(path);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) return 1;
  int err = errno;
  if (err == EAGAIN || err == EINPROGRESS) return 1;  // a listener with a full backlog
  if (err == ECONNREFUSED || err == ENOENT) return 0;
  return -err;
}

// Shared with reply callbacks that may run on other threads after the server is gone: they
// post to the io_context only while the server is open (the io_context outlives the server).
struct Gate {
  std::mutex mutex;
  bool open = true;
  asio::io_context* io = nullptr;
};

class ControlImpl;

class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  ControlSession(std::shared_ptr<ControlImpl> server, local::socket socket, std::uint64_t id);
  void start();
  void send(json reply);
  void close();

 private:
  void on_read(error_code ec, std::size_t length);
  void on_timer(error_code ec);
  void handle(std::string_view line);
  void finish();

  enum class Phase { reading, handling, writing, done };
  std::shared_ptr<ControlImpl> server_;
  local::socket socket_;
  asio::streambuf buffer_;
  asio::steady_timer timer_;
  std::string out_;
  std::uint64_t id_;
  Phase phase_ = Phase::reading;
  bool timed_out_ = false;
};

class ControlImpl : public std::enable_shared_from_this<ControlImpl> {
 public:
  ControlImpl(asio::io_context& io, std::string path, ControlHandler handler, ControlLimits limits)
      : io_(io),
        acceptor_(io),
        path_(std::move(path)),
        handler_(std::move(handler)),
        limits_(limits),
        gate_(std::make_shared<Gate>()) {
    gate_->io = &io;
    if (limits_.max_request_bytes < 2) limits_.max_request_bytes = 2;
  }

  Status listen();
  void accept();
  void stop();

  asio::io_context& io() { return io_; }
  const ControlHandler& handler() const { return handler_; }
  const ControlLimits& limits() const { return limits_; }
  const std::shared_ptr<Gate>& gate() const { return gate_; }
  const std::string& path() const { return path_; }
  bool stopped() const { return stopped_; }
  void forget(std::uint64_t id) { sessions_.erase(id); }

 private:
  void on_accept(error_code ec, local::socket socket);

  asio::io_context& io_;
  local::acceptor acceptor_;
  std::string path_;
  ControlHandler handler_;
  ControlLimits limits_;
  std::shared_ptr<Gate> gate_;
  std::unique_ptr<asio::steady_timer> retry_timer_;
  std::map<std::uint64_t, std::shared_ptr<ControlSession>> sessions_;
  std::uint64_t next_id_ = 1;
  ino_t inode_ = 0;
  dev_t device_ = 0;
  bool bound_ = false;
  bool stopped_ = false;
};

// The reply callback's state: delivers at most once; if every copy of the callback is dropped
// without a reply, the client still gets an error instead of waiting for its timeout.
class ReplyState {
 public:
  ReplyState(std::weak_ptr<ControlSession> session, std::shared_ptr<Gate> gate)
      : session_(std::move(session)), gate_(std::move(gate)) {}
  ReplyState(const ReplyState&) = delete;
  ReplyState& operator=(const ReplyState&) = delete;
  ~ReplyState() {
    if (!done_.load()) deliver(error_reply("the daemon dropped the request without a reply"));
  }

  void deliver(json reply) {
    if (done_.exchange(true)) return;
    std::lock_guard lock(gate_->mutex);
    if (!gate_->open) return;
    asio::post(*gate_->io, [session = session_, reply = std::move(reply)]() mutable {
      if (auto live = session.lock()) live->send(std::move(reply));
    });
  }

 private:
  std::weak_ptr<ControlSession> session_;
  std::shared_ptr<Gate> gate_;
  std::atomic<bool> done_{false};
};

// ---- ControlImpl --------------------------------------------------------------------------------

Status ControlImpl::listen() {
  if (!path_fits(path_))
    return Error{ErrorKind::invalid_argument, "control socket path must be 1.." +
                                                  std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                                  " bytes long: '" + path_ + "'"};
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error{ErrorKind::io_error, "control socket path " + path_ + " exists and is not a socket"};
    int listening = probe_listener(path_);
    if (listening == 1) return Error{ErrorKind::unavailable, "another substrated is listening on " + path_};
    if (listening < 0)
      return Error{ErrorKind::io_error,
                   "cannot check the existing control socket " + path_ + ": " + errno_text(-listening)};
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
      return Error{ErrorKind::io_error, "cannot remove the stale control socket " + path_ + ": " + errno_text(errno)};
    spdlog::info("removed stale control socket {}", path_);
  } else if (errno != ENOENT) {
    return Error{ErrorKind::io_error, "cannot stat control socket path " + path_ + ": " + errno_text(errno)};
  }

  error_code ec;
  auto fail = [&](const std::string& what) -> Status {
    error_code ignored;
    acceptor_.close(ignored);
    if (bound_) ::unlink(path_.c_str());
    bound_ = false;
    return Error{ErrorKind::io_error, "cannot " + what + " control socket " + path_ + ": " + ec.message()};
  };
  local::endpoint endpoint(path_);
  if (acceptor_.open(endpoint.protocol(), ec)) return fail("create");
  if (acceptor_.bind(endpoint, ec)) return fail("bind");
  bound_ = true;
  // Permissions before listen(): nobody can connect while the mode is still the umask's.
  if (::chmod(path_.c_str(), 0660) != 0) {
    ec = error_code(errno, boost::system::system_category());
    return fail("chmod");
  }
  if (::lstat(path_.c_str(), &st) == 0) {
    inode_ = st.st_ino;
    device_ = st.st_dev;
  }
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen on");
  spdlog::info("control socket listening on {}", path_);
  return ok_status();
}

void ControlImpl::accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](error_code ec, local::socket socket) { self->on_accept(ec, std::move(socket)); });
}

void ControlImpl::on_accept(error_code ec, local::socket socket) {
  if (stopped_ || ec == asio::error::operation_aborted) return;
  if (ec) {
    spdlog::warn("control socket accept failed: {}", ec.message());
    if (!retry_timer_) retry_timer_ = std::make_unique<asio::steady_timer>(io_);
    retry_timer_->expires_after(std::chrono::milliseconds(100));
    retry_timer_->async_wait([self = shared_from_this()](error_code timer_ec) {
      if (!timer_ec && !self->stopped_) self->accept();
    });
    return;
  }
  auto id = next_id_++;
  auto session = std::make_shared<ControlSession>(shared_from_this(), std::move(socket), id);
  const bool over = sessions_.size() >= limits_.max_sessions;
  sessions_.emplace(id, session);
  if (over) {
    spdlog::debug("control socket: {} sessions open, refusing another", limits_.max_sessions);
    session->send(
        error_reply("busy: " + std::to_string(limits_.max_sessions) + " control sessions are open; try again later"));
  } else {
    session->start();
  }
  accept();
}

void ControlImpl::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard lock(gate_->mutex);
    gate_->open = false;
  }
  error_code ignored;
  acceptor_.close(ignored);
  if (retry_timer_) retry_timer_->cancel();
  auto live = std::move(sessions_);
  sessions_.clear();
  for (auto& [id, session] : live) session->close();
  // Remove the file only if it is still ours (not replaced by another daemon meanwhile).
  struct stat st {};
  if (bound_ && ::lstat(path_.c_str(), &st) == 0 && st.st_ino == inode_ && st.st_dev == device_)
    ::unlink(path_.c_str());
  if (bound_) spdlog::info("control socket {} closed", path_);
  bound_ = false;
}

// ---- ControlSession -----------------------------------------------------------------------------

ControlSession::ControlSession(std::shared_ptr<ControlImpl> server, local::socket socket, std::uint64_t id)
    : server_(std::move(server)),
      socket_(std::move(socket)),
      buffer_(server_->limits().max_request_bytes),
      timer_(server_->io()),
      id_(id) {}

void ControlSession::start() {
  timer_.expires_after(to_duration(server_->limits().read_timeout_seconds));
  timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  asio::async_read_until(socket_, buffer_, '\n',
                         [self = shared_from_this()](error_code ec, std::size_t length) { self->on_read(ec, length); });
}

void ControlSession::on_timer(error_code ec) {
  if (ec || phase_ == Phase::done) return;  // cancelled
  if (phase_ == Phase::reading) {
    timed_out_ = true;
    error_code ignored;
    socket_.cancel(ignored);  // the read completes with operation_aborted and answers
  } else if (phase_ == Phase::writing) {
    spdlog::debug("control client did not take its reply in time");
    finish();
  }
}

void ControlSession::on_read(error_code ec, std::size_t length) {
  if (phase_ != Phase::reading) return;
  const auto& limits = server_->limits();
  if (timed_out_) {
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), "%g", limits.read_timeout_seconds);
    return send(error_reply(std::string("timeout: no complete request line within ") + seconds + " s"));
  }
  if (ec == asio::error::not_found)
    return send(error_reply("request too large: over " + std::to_string(limits.max_request_bytes) +
                            " bytes without a newline"));
  if (ec == asio::error::eof && buffer_.size() > 0) {
    // The client half-closed after an unterminated line: take it as the request.
    length = buffer_.size();
  } else if (ec) {
    return finish();  // a client that left (or a connect test by another daemon's start())
  }
  std::string line(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + length);
  handle(line);
}

void ControlSession::handle(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  json request;
  try {
    request = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    return send(error_reply(std::string("invalid JSON: ") + e.what()));
  }
  if (!request.is_object())
    return send(error_reply(std::string("request must be a JSON object, not ") + request.type_name()));
  auto command = request.find("command");
  if (command == request.end()) return send(error_reply("request has no \"command\""));
  if (!command->is_string()) return send(error_reply("\"command\" must be a string"));

  phase_ = Phase::handling;
  timer_.cancel();  // the handler's work (a probe run) has its own bounds
  auto state = std::make_shared<ReplyState>(weak_from_this(), server_->gate());
  std::function<void(json)> reply = [state](json value) { state->deliver(std::move(value)); };
  try {
    const auto& handler = server_->handler();
    if (!handler) throw std::runtime_error("no handler installed");
    handler(request, std::move(reply));
  } catch (const std::exception& e) {
    spdlog::error("control command '{}' failed: {}", command->get<std::string>(), e.what());
    state->deliver(error_reply(std::string("internal error: ") + e.what()));
  } catch (...) {
    spdlog::error("control command '{}' failed with a non-standard exception", command->get<std::string>());
    state->deliver(error_reply("internal error"));
  }
}

void ControlSession::send(json reply) {
  if (phase_ == Phase::writing || phase_ == Phase::done || server_->stopped()) return;
  phase_ = Phase::writing;
  out_ = dump(reply);
  out_ += '\n';
  timer_.expires_after(to_duration(server_->limits().read_timeout_seconds));
  timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](error_code ec, std::size_t) {
    if (self->phase_ != Phase::writing) return;
    if (ec) spdlog::debug("control reply not delivered: {}", ec.message());
    self->finish();
  });
}

void ControlSession::close() {
  phase_ = Phase::done;
  error_code ignored;
  timer_.cancel();
  socket_.shutdown(local::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void ControlSession::finish() {
  close();
  server_->forget(id_);  // may drop the map's reference; handlers still hold one
}

// ---- Public wrapper -----------------------------------------------------------------------------

class ControlServerHandle final : public ControlServer {
 public:
  explicit ControlServerHandle(std::shared_ptr<ControlImpl> impl) : impl_(std::move(impl)) {}
  ~ControlServerHandle() override { impl_->stop(); }
  void stop() override { impl_->stop(); }

 private:
  std::shared_ptr<ControlImpl> impl_;
};

// ---- Client helpers -----------------------------------------------------------------------------

// Milliseconds left until `deadline` for poll(); -1 = no deadline.
int remaining_ms(const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits for `events`; 1 ready, 0 timed out, -errno on failure.
int wait_for(int fd, short events, const std::optional<Clock::time_point>& deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    int ms = remaining_ms(deadline);
    int rc = ::poll(&entry, 1, ms);
    if (rc > 0) return 1;
    if (rc == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

Expected<std::unique_ptr<ControlServer>> ControlServer::start(boost::asio::io_context& io,
                                                              const std::string& socket_path, ControlHandler handler,
                                                              ControlLimits limits) {
  auto impl = std::make_shared<ControlImpl>(io, socket_path, std::move(handler), limits);
  if (auto status = impl->listen(); !status) return status.error();
  impl->accept();
  return std::unique_ptr<ControlServer>(std::make_unique<ControlServerHandle>(std::move(impl)));
}

Expected<nlohmann::json> control_request(const std::string& socket_path, const nlohmann::json& request,
                                         double timeout_seconds) {
  if (!path_fits(socket_path))
    return Error{ErrorKind::invalid_argument, "control socket path must be 1.." +
                                                  std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                                  " bytes long: '" + socket_path + "'"};
  std::optional<Clock::time_point> deadline;
  if (timeout_seconds > 0) deadline = Clock::now() + to_duration(timeout_seconds);
  auto timed_out = [&](const char* what) {
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), "%g", timeout_seconds);
    return Error{ErrorKind::timeout, std::string("no reply from the daemon at ") + socket_path + " within " + seconds +
                                         " s (" + what + ")"};
  };

  FileDescriptor fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return Error{ErrorKind::io_error, "cannot create a Unix socket: " + errno_text(errno)};
  auto address = unix_address(socket_path);
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
      return Error{ErrorKind::unavailable, "no daemon at " + socket_path};
    if (err == EAGAIN) {  // the daemon's backlog is full: retry until the deadline
      if (remaining_ms(deadline) == 0) return timed_out("connecting");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    return Error{ErrorKind::io_error, "cannot connect to " + socket_path + ": " + errno_text(err)};
  }

  std::string out = dump(request);
  out += '\n';
  std::size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      int ready = wait_for(fd.get(), POLLOUT, deadline);
      if (ready == 0) return timed_out("sending");
      if (ready < 0) return Error{ErrorKind::io_error, "cannot send to " + socket_path + ": " + errno_text(-ready)};
      continue;
    }
    if (err == EPIPE || err == ECONNRESET) break;  // the daemon gave up on us; it may have said why
    return Error{ErrorKind::io_error, "cannot send to " + socket_path + ": " + errno_text(err)};
  }

  std::string in;
  char chunk[16384];
  for (;;) {
    auto newline = in.find('\n');
    if (newline != std::string::npos) {
      in.resize(newline);
      break;
    }
    if (in.size() > k_max_reply_bytes)
      return Error{ErrorKind::corrupt, "reply from the daemon at " + socket_path + " exceeds " +
                                           std::to_string(k_max_reply_bytes) + " bytes"};
    ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
    if (n > 0) {
      in.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      if (in.empty())
        return Error{ErrorKind::io_error, "the daemon at " + socket_path + " closed the connection without a reply"};
      break;  // an unterminated last line: try to parse it
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      int ready = wait_for(fd.get(), POLLIN, deadline);
      if (ready == 0) return timed_out("waiting for the reply");
      if (ready < 0) return Error{ErrorKind::io_error, "cannot read from " + socket_path + ": " + errno_text(-ready)};
      continue;
    }
    if (err == ECONNRESET && !in.empty()) break;
    return Error{ErrorKind::io_error, "cannot read from " + socket_path + ": " + errno_text(err)};
  }

  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    return Error{ErrorKind::corrupt, "invalid reply from the daemon at " + socket_path + ": " + e.what()};
  }
}

}  // namespace substrate
