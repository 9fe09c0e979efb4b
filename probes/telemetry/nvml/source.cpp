#include "probes/telemetry/nvml/source.hpp"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

namespace substrate::nvml {

Expected<std::unique_ptr<Source>> Source::open(std::chrono::milliseconds xid_wait, InitBackoff backoff) {
  TRY_ASSIGN(auto library, Library::open());
  std::unique_ptr<Source> source(new Source(std::move(library), xid_wait, backoff));
  source->try_init();
  return source;
}

Source::Source(std::shared_ptr<const Library> library, std::chrono::milliseconds xid_wait, InitBackoff backoff)
    : library_(std::move(library)), xid_wait_(xid_wait), backoff_(backoff), next_wait_(backoff.first) {}

void Source::try_init() {
  auto session = Session::open(library_, xid_wait_);
  if (session) {
    session_ = std::move(*session);
    if (!failure_.empty()) spdlog::info("telemetry: NVML initialised after failing ({})", failure_);
    return;
  }
  failure_ = session.error().message;
  pending_error_ = telemetry::ReadError{telemetry::kSourceNvml, "init_failed", failure_};
  next_try_ = std::chrono::steady_clock::now() + next_wait_;
  next_wait_ = std::min(next_wait_ * 2, backoff_.max);
}

telemetry::SourceResult Source::read() {
  if (!session_ && std::chrono::steady_clock::now() >= next_try_) try_init();
  if (session_) {
    telemetry::SourceResult result = session_->read();
    result.nvml_up = true;
    return result;
  }
  telemetry::SourceResult result;
  result.nvml_up = false;
  const auto retry_in = std::chrono::ceil<std::chrono::seconds>(
      std::max(std::chrono::steady_clock::duration::zero(), next_try_ - std::chrono::steady_clock::now()));
  result.notes.push_back(failure_ + "; retrying in " + std::to_string(retry_in.count()) + " s");
  if (pending_error_) result.errors.push_back(*std::exchange(pending_error_, std::nullopt));
  return result;
}

}  // namespace substrate::nvml
