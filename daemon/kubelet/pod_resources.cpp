#include "daemon/kubelet/pod_resources.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cctype>

#include "daemon/kubelet/pod_resources.grpc.pb.h"

namespace substrate::kubelet {
namespace {

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// "GPU-5FD4..." / "MIG-..." -> "5fd4...": NVIDIA's tools print UUIDs with a kind prefix.
std::string bare_uuid(const std::string& id) {
  std::string text = lower(id);
  for (const char* prefix : {"gpu-", "mig-"}) {
    if (text.rfind(prefix, 0) == 0) return text.substr(4);
  }
  return text;
}

// "00000000:3B:00.0" and "0000:3b:00.0" -> "3b:00.0" plus the domain as a number, so the widths
// nvidia-smi (8 digits) and sysfs (4 digits) use compare equal.
std::string bare_pci(const std::string& id) {
  const std::string text = lower(id);
  const auto colon = text.find(':');
  if (colon == std::string::npos || text.find(':', colon + 1) == std::string::npos) return text;
  const std::string domain = text.substr(0, colon);
  if (domain.empty() || domain.find_first_not_of("0123456789abcdef") != std::string::npos) return text;
  return std::to_string(std::stoull(domain, nullptr, 16)) + ":" + text.substr(colon + 1);
}

}  // namespace

Expected<std::vector<DeviceAssignment>> list_device_assignments(const std::string& socket_path,
                                                                std::chrono::milliseconds deadline) {
  auto channel = grpc::CreateChannel("unix:" + socket_path, grpc::InsecureChannelCredentials());
  auto stub = v1::PodResourcesLister::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  v1::ListPodResourcesRequest request;
  v1::ListPodResourcesResponse response;
  const grpc::Status status = stub->List(&context, request, &response);
  if (!status.ok()) {
    const ErrorKind kind =
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? ErrorKind::timeout : ErrorKind::unavailable;
    return Error{kind, "kubelet pod-resources List on " + socket_path + ": " + status.error_message() + " (gRPC code " +
                           std::to_string(static_cast<int>(status.error_code())) + ")"};
  }
  std::vector<DeviceAssignment> assignments;
  for (const auto& pod : response.pod_resources()) {
    for (const auto& container : pod.containers()) {
      for (const auto& devices : container.devices()) {
        for (const auto& id : devices.device_ids()) {
          assignments.push_back({devices.resource_name(), id, pod.name(), pod.namespace_(), container.name()});
        }
      }
    }
  }
  return assignments;
}

bool names_device(const std::string& device_id, const std::string& uuid, const std::string& pci_bus_id) {
  if (device_id.empty()) return false;
  if (!uuid.empty() && bare_uuid(device_id) == bare_uuid(uuid)) return true;
  return !pci_bus_id.empty() && bare_pci(device_id) == bare_pci(pci_bus_id);
}

PodResourcesWatcher::PodResourcesWatcher(std::string socket_path, std::chrono::milliseconds interval,
                                         std::chrono::milliseconds deadline)
    : socket_path_(std::move(socket_path)), interval_(interval), deadline_(deadline), thread_([this] { run(); }) {}

PodResourcesWatcher::~PodResourcesWatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

PodResourcesWatcher::Snapshot PodResourcesWatcher::snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

void PodResourcesWatcher::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    auto listed = list_device_assignments(socket_path_, deadline_);
    lock.lock();
    if (listed) {
      snapshot_.assignments = std::move(listed).value();
      snapshot_.up = true;
      snapshot_.last_success_unix = unix_now();
    } else {
      // Keep the last good assignments: a kubelet restart should not blank the attribution.
      snapshot_.up = false;
      ++snapshot_.errors;
      snapshot_.last_error = listed.error().message;
    }
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace substrate::kubelet
