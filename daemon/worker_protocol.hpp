#pragma once
// The protocol between the daemon and its worker processes (docs/worker-protocol.md): frames of
// a 4-byte big-endian payload length followed by one JSON object carrying "v" (the protocol
// version) and "type". Payloads above k_max_frame_bytes are refused.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"

namespace substrate::worker {

inline constexpr int k_protocol_version = 1;
inline constexpr std::size_t k_max_frame_bytes = 16u << 20;
// The fd on which a worker finds its end of the socketpair.
inline constexpr int k_worker_fd = 3;
// The argv[1] that starts the binary in worker mode.
inline constexpr const char* k_worker_command = "__worker";

// Drills that act on the worker process instead of a kernel's output: after the device is open,
// "hang" never returns from the spec and "crash" raises SIGSEGV. Accepted wherever a drill is
// configured (probes.<id>.drill).
bool is_process_drill(const std::string& drill);

// One frame's bytes for `message`, with "v" set. invalid_argument when it exceeds the limit.
Expected<std::string> encode(nlohmann::json message);

// Accumulates bytes from the stream and hands out complete frames in order.
class FrameDecoder {
 public:
  // Appends bytes; corrupt once a length prefix exceeds the limit or a payload is not a JSON
  // object with the expected "v" (the stream is then unusable and later calls keep failing).
  Status feed(const char* data, std::size_t size);
  bool has_frame() const { return !frames_.empty(); }
  nlohmann::json take();  // the oldest complete frame; call only when has_frame()
  // Bytes of an incomplete frame still waiting (nonzero at EOF: the peer died mid-frame).
  std::size_t pending_bytes() const { return buffer_.size(); }

 private:
  std::string buffer_;
  std::deque<nlohmann::json> frames_;
  bool broken_ = false;
  std::string why_;
};

// Blocking helpers for the worker side. write_frame: io_error when the peer is gone.
// read_frame: unavailable at a clean EOF before any byte, corrupt on a bad frame, io_error else.
Status write_frame(int fd, const nlohmann::json& message);
Expected<nlohmann::json> read_frame(int fd);

}  // namespace substrate::worker
