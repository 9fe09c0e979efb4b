#pragma once
// Expected-style results for the low layers; the CLI and daemon turn errors into messages or
// exit codes at the top.
#include <string>
#include <utility>
#include <variant>

namespace substrate {

enum class ErrorKind {
  invalid_argument,  // the caller asked for something malformed or impossible
  unavailable,       // a backend, library or device is absent
  device_error,      // the driver or API reported a failure
  timeout,           // device work did not finish within its bound: the device is hung
  io_error,          // a file could not be read or written
  corrupt,           // data failed validation (checksum, format)
  // The device is healthy but its resources are taken by other work: a run that meets these is
  // skipped, never counted against the device (run_probe maps them to RunStatus::skipped).
  out_of_memory,  // not enough free device memory (e.g. CUDA_ERROR_OUT_OF_MEMORY)
  busy,           // the device refuses this process (exclusive mode, MPS, not permitted)
  // The device itself reported an uncorrectable hardware fault (e.g. CUDA_ERROR_ECC_UNCORRECTABLE):
  // evidence against the device, folded like a failed check (RunStatus::fail).
  hardware_fault,
};

const char* to_string(ErrorKind kind);

struct Error {
  ErrorKind kind;
  std::string message;
};

// E: the error type; Error everywhere except where a caller needs more than kind and message.
template <class T, class E = Error>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}
  Expected(E error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const E& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, E> state_;
};

struct Unit {};
using Status = Expected<Unit>;
inline Status ok_status() { return Unit{}; }

// Error propagation (ccache's TRY): the enclosing function returns the error of a failed
// Expected, whose error type must convert to the function's own.
//   TRY(write_file(path, text));                      // a Status or any Expected
//   TRY_ASSIGN(auto dims, parse_dimensions(text, 3)); // declares `dims` from the value
#define SUBSTRATE_TRY_JOIN2(a, b) a##b
#define SUBSTRATE_TRY_JOIN(a, b) SUBSTRATE_TRY_JOIN2(a, b)
#define TRY(expression)                          \
  do {                                           \
    auto&& substrate_try_result_ = (expression); \
    if (!substrate_try_result_) {                \
      return substrate_try_result_.error();      \
    }                                            \
  } while (false)
#define TRY_ASSIGN(declaration, expression)                               \
  auto SUBSTRATE_TRY_JOIN(substrate_try_value_, __LINE__) = (expression); \
  if (!SUBSTRATE_TRY_JOIN(substrate_try_value_, __LINE__)) {              \
    return SUBSTRATE_TRY_JOIN(substrate_try_value_, __LINE__).error();    \
  }                                                                       \
  declaration = std::move(SUBSTRATE_TRY_JOIN(substrate_try_value_, __LINE__)).value()

}  // namespace substrate
