#pragma once
// The control socket: a Unix stream socket (mode 0660) in the runtime directory. One request per
// connection: a single JSON object on one line (at most 64 KiB); one JSON reply on one line.
// Malformed, oversized or slow requests get {"ok":false,"error":"..."} and never disturb the
// daemon. Requests:
//   {"command":"probe","args":["--kernel","gemm",...]}  -> {"ok":true,"exit_code":N,"results":[...]}
//   {"command":"status"}                                 -> {"ok":true,"status":{...}}
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/expected.hpp"

namespace substrate {

// Called on the event loop; may complete `reply` later from any thread (the server posts it back).
using ControlHandler = std::function<void(const nlohmann::json& request, std::function<void(nlohmann::json)> reply)>;

struct ControlLimits {
  std::size_t max_request_bytes = 64 * 1024;  // the request line, newline included
  double read_timeout_seconds = 5.0;          // to receive the request line (and to send the reply)
  // Open sessions at most; a connection beyond it is answered {"ok":false,"error":"busy: ..."}
  // and closed at once, so idle clients cannot exhaust the daemon's file descriptors.
  std::size_t max_sessions = 64;
};

// start() replaces a stale socket file (nothing listening) and fails with unavailable when another
// daemon listens at `socket_path`. stop() and the destructor close the socket and remove the file;
// call them on the loop thread or while the loop is not running.
class ControlServer {
 public:
  static Expected<std::unique_ptr<ControlServer>> start(boost::asio::io_context& io, const std::string& socket_path,
                                                        ControlHandler handler, ControlLimits limits = {});
  virtual ~ControlServer() = default;
  virtual void stop() = 0;
};

// Client side, used by `substrated probe`/`status`: sends one request, waits up to
// timeout_seconds for the reply (<= 0: no limit). unavailable when no daemon listens at
// `socket_path`; timeout when the reply does not come in time; the JSON reply otherwise (which may
// itself say {"ok":false,...}).
Expected<nlohmann::json> control_request(const std::string& socket_path, const nlohmann::json& request,
                                         double timeout_seconds);

}  // namespace substrate
