#pragma once
// Pod attribution: which pod, namespace and container each accelerator is assigned to, read from
// the kubelet's pod-resources gRPC API (List, over its unix socket), as dcgm-exporter (`-k`) and
// AMD's device-metrics-exporter do. Exported on one info series per assignment
// (substrate_device_pod_info), never as labels on every series.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/expected.hpp"

namespace substrate::kubelet {

// One device-plugin device allocated to one container.
struct DeviceAssignment {
  std::string resource_name;  // "nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "amd.com/gpu"
  std::string device_id;      // as the device plugin names it: "GPU-<uuid>", "MIG-<uuid>", "0000:c1:00.0"
  std::string pod;
  std::string pod_namespace;
  std::string container;
  bool operator==(const DeviceAssignment&) const = default;
};

// Calls v1.PodResourcesLister/List on `socket_path` (a unix socket, normally
// /var/lib/kubelet/pod-resources/kubelet.sock) and flattens the answer into one entry per
// (container, device id). Waits at most `deadline` for connecting and answering.
// Errors: io_error naming the socket and the gRPC status (unavailable: no kubelet socket or no
// permission; deadline exceeded: the kubelet did not answer in time).
Expected<std::vector<DeviceAssignment>> list_device_assignments(const std::string& socket_path,
                                                                std::chrono::milliseconds deadline);

// Whether a device plugin's device id names the device with this identity. NVIDIA's plugin uses
// the UUID as nvidia-smi prints it ("GPU-5fd4..." or "MIG-..."), AMD's the PCI bus id
// ("0000:c1:00.0"); `uuid` is the canonical lower-case 8-4-4-4-12 form (DeviceInfo::uuid) and
// `pci_bus_id` "0000:65:00.0". Both sides compare case-insensitively, without the GPU-/MIG-
// prefix, and PCI ids with the domain's width ignored (nvidia-smi prints "00000000:65:00.0").
bool names_device(const std::string& device_id, const std::string& uuid, const std::string& pci_bus_id);

// Polls List every `interval` on its own thread, so a slow or absent kubelet never blocks the
// daemon's loop; the newest answer is kept for the scrape. Stopping waits at most one List
// deadline.
class PodResourcesWatcher {
 public:
  struct Snapshot {
    std::vector<DeviceAssignment> assignments;  // from the last successful List
    bool up = false;                            // whether the last List succeeded
    double last_success_unix = 0.0;             // 0: never
    std::uint64_t errors = 0;                   // failed Lists since start
    std::string last_error;
  };

  PodResourcesWatcher(std::string socket_path, std::chrono::milliseconds interval,
                      std::chrono::milliseconds deadline = std::chrono::seconds(2));
  ~PodResourcesWatcher();
  PodResourcesWatcher(const PodResourcesWatcher&) = delete;
  PodResourcesWatcher& operator=(const PodResourcesWatcher&) = delete;

  Snapshot snapshot() const;
  const std::string& socket_path() const { return socket_path_; }

 private:
  void run();

  const std::string socket_path_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds deadline_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  Snapshot snapshot_;
  std::thread thread_;
};

}  // namespace substrate::kubelet
