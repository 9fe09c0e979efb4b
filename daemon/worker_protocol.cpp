#include "daemon/worker_protocol.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace substrate::worker {
namespace {

std::uint32_t read_be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) | std::uint32_t{u[3]};
}

}  // namespace

bool is_process_drill(const std::string& drill) { return drill == "hang" || drill == "crash"; }

Expected<std::string> encode(nlohmann::json message) {
  message["v"] = k_protocol_version;
  const std::string payload = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (payload.size() > k_max_frame_bytes) {
    return Error{ErrorKind::invalid_argument, "frame of " + std::to_string(payload.size()) + " bytes exceeds the " +
                                                  std::to_string(k_max_frame_bytes) + "-byte limit"};
  }
  const auto n = static_cast<std::uint32_t>(payload.size());
  std::string frame{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                    static_cast<char>(n)};
  return frame + payload;
}

Status FrameDecoder::feed(const char* data, std::size_t size) {
  if (broken_) return Error{ErrorKind::corrupt, why_};
  buffer_.append(data, size);
  while (buffer_.size() >= 4) {
    const std::uint32_t length = read_be32(buffer_.data());
    if (length > k_max_frame_bytes) {
      broken_ = true;
      why_ = "frame length " + std::to_string(length) + " exceeds the limit";
      return Error{ErrorKind::corrupt, why_};
    }
    if (buffer_.size() < 4 + std::size_t{length}) break;
    nlohmann::json message = nlohmann::json::parse(buffer_.begin() + 4, buffer_.begin() + 4 + length, nullptr,
                                                   /*allow_exceptions=*/false);
    buffer_.erase(0, 4 + std::size_t{length});
    if (!message.is_object() || message.value("v", -1) != k_protocol_version || !message.contains("type") ||
        !message["type"].is_string()) {
      broken_ = true;
      // A peer of another version says which it speaks: name it (an external worker written
      // against a later protocol, docs/external-workers.md).
      const bool versioned = message.is_object() && message.contains("v") && message["v"] != k_protocol_version;
      why_ = versioned ? "frame of protocol version " + message["v"].dump() + ", this side speaks version " +
                             std::to_string(k_protocol_version)
                       : "not a version " + std::to_string(k_protocol_version) + " frame";
      return Error{ErrorKind::corrupt, why_};
    }
    frames_.push_back(std::move(message));
  }
  return ok_status();
}

nlohmann::json FrameDecoder::take() {
  nlohmann::json front = std::move(frames_.front());
  frames_.pop_front();
  return front;
}

Status write_frame(int fd, const nlohmann::json& message) {
  TRY_ASSIGN(auto frame, encode(message));
  const std::string& bytes = frame;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{ErrorKind::io_error, std::string("write to the daemon: ") + std::strerror(errno)};
    done += static_cast<std::size_t>(n);
  }
  return ok_status();
}

Expected<nlohmann::json> read_frame(int fd) {
  FrameDecoder decoder;
  char buffer[65536];
  bool any = false;
  while (!decoder.has_frame()) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{ErrorKind::io_error, std::string("read from the daemon: ") + std::strerror(errno)};
    if (n == 0) {
      if (!any) return Error{ErrorKind::unavailable, "the daemon closed the channel"};
      return Error{ErrorKind::corrupt, "the channel closed in the middle of a frame"};
    }
    any = true;
    TRY(decoder.feed(buffer, static_cast<std::size_t>(n)));
  }
  return decoder.take();
}

}  // namespace substrate::worker
