// Pod attribution against a fake kubelet: a real gRPC server (Debian's gRPC) serving the
// pod-resources List on a unix socket, as the kubelet does on
// /var/lib/kubelet/pod-resources/kubelet.sock.
#include "daemon/kubelet/pod_resources.hpp"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "daemon/kubelet/pod_resources.grpc.pb.h"
#include "tests/support/daemon_process.hpp"
#include "tests/support/scrape.hpp"

namespace fs = std::filesystem;
using namespace substrate;
using namespace substrate::kubelet;
using namespace substrate::testing;

namespace {

struct FakeDevice {
  std::string resource, id, pod, pod_namespace, container;
};

class FakeKubelet final : public v1::PodResourcesLister::Service {
 public:
  FakeKubelet(std::vector<FakeDevice> devices, std::chrono::milliseconds delay = {})
      : devices_(std::move(devices)), delay_(delay) {
    socket_ = (fs::temp_directory_path() /
               ("substrated-kubelet-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++) + ".sock"))
                  .string();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeKubelet() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    fs::remove(socket_);
  }

  grpc::Status List(grpc::ServerContext*, const v1::ListPodResourcesRequest*,
                    v1::ListPodResourcesResponse* response) override {
    std::this_thread::sleep_for(delay_);
    ++calls;
    for (const FakeDevice& d : devices_) {
      v1::PodResources* pod = response->add_pod_resources();
      pod->set_name(d.pod);
      pod->set_namespace_(d.pod_namespace);
      v1::ContainerResources* container = pod->add_containers();
      container->set_name(d.container);
      v1::ContainerDevices* devices = container->add_devices();
      devices->set_resource_name(d.resource);
      devices->add_device_ids(d.id);
    }
    return grpc::Status::OK;
  }

  const std::string& socket() const { return socket_; }
  std::atomic<int> calls{0};

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::vector<FakeDevice> devices_;
  std::chrono::milliseconds delay_;
  std::string socket_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace

TEST_CASE("pod_resources: List is flattened to one assignment per container and device id", "[unit]") {
  FakeKubelet kubelet({{"nvidia.com/gpu", "GPU-5fd4a8e2-0000-1111-2222-333344445555", "vllm-0", "serving", "engine"},
                       {"amd.com/gpu", "0000:c1:00.0", "trainer-7", "research", "main"}});
  auto listed = list_device_assignments(kubelet.socket(), std::chrono::seconds(2));
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  CHECK(listed->at(0) ==
        DeviceAssignment{"nvidia.com/gpu", "GPU-5fd4a8e2-0000-1111-2222-333344445555", "vllm-0", "serving", "engine"});
  CHECK(listed->at(1) == DeviceAssignment{"amd.com/gpu", "0000:c1:00.0", "trainer-7", "research", "main"});
}

TEST_CASE("pod_resources: no kubelet socket and a kubelet past the deadline are errors naming the socket", "[unit]") {
  auto missing = list_device_assignments("/nonexistent/kubelet.sock", std::chrono::milliseconds(500));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == ErrorKind::unavailable);
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/kubelet.sock"));

  FakeKubelet slow({}, std::chrono::milliseconds(1500));
  auto late = list_device_assignments(slow.socket(), std::chrono::milliseconds(200));
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().kind == ErrorKind::timeout);
}

TEST_CASE("pod_resources: device plugin ids name devices in the forms NVIDIA and AMD plugins use", "[unit]") {
  const std::string uuid = "5fd4a8e2-0000-1111-2222-333344445555";
  CHECK(names_device("GPU-5FD4A8E2-0000-1111-2222-333344445555", uuid, ""));
  CHECK(names_device("MIG-5fd4a8e2-0000-1111-2222-333344445555", uuid, ""));
  CHECK(names_device("5fd4a8e2-0000-1111-2222-333344445555", uuid, ""));
  CHECK_FALSE(names_device("GPU-6fd4a8e2-0000-1111-2222-333344445555", uuid, ""));
  CHECK(names_device("0000:c1:00.0", "", "0000:c1:00.0"));
  CHECK(names_device("00000000:C1:00.0", uuid, "0000:c1:00.0"));
  CHECK_FALSE(names_device("0000:c2:00.0", uuid, "0000:c1:00.0"));
  CHECK_FALSE(names_device("", uuid, "0000:c1:00.0"));
  CHECK_FALSE(names_device("GPU-", "", ""));
}

TEST_CASE("pod_resources watcher: keeps the last good answer while the kubelet is gone", "[unit]") {
  auto kubelet = std::make_unique<FakeKubelet>(std::vector<FakeDevice>{{"nvidia.com/gpu", "GPU-a", "p", "n", "c"}});
  const std::string socket = kubelet->socket();
  PodResourcesWatcher watcher(socket, std::chrono::milliseconds(100), std::chrono::milliseconds(300));
  REQUIRE(wait_until([&] { return watcher.snapshot().up; }, std::chrono::seconds(10)));
  CHECK(watcher.snapshot().assignments.size() == 1);
  kubelet.reset();
  REQUIRE(wait_until([&] { return !watcher.snapshot().up; }, std::chrono::seconds(10)));
  const auto snapshot = watcher.snapshot();
  CHECK(snapshot.errors >= 1);
  CHECK(snapshot.assignments.size() == 1);
  CHECK_THAT(snapshot.last_error, Catch::Contains(socket));
}

TEST_CASE("daemon: a device assigned by the kubelet is exported with its pod on substrate_device_pod_info", "[e2e]") {
  // The lavapipe device's UUID, as the daemon reports it, is what the fake device plugin assigned.
  DaemonProcess probe_uuid(
      "  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n");
  probe_uuid.start();
  REQUIRE(probe_uuid.wait_ready());
  const auto status = nlohmann::json::parse(http_get(probe_uuid.port(), "/status").body);
  const std::string uuid = status.at("devices").at(0).at("device").at("uuid").get<std::string>();
  REQUIRE(uuid.size() == 36);
  probe_uuid.signal(SIGTERM);
  REQUIRE(probe_uuid.wait_exit(std::chrono::seconds(15)) == 0);

  FakeKubelet kubelet({{"nvidia.com/gpu", "GPU-" + uuid, "vllm-0", "serving", "engine"},
                       {"nvidia.com/gpu", "GPU-00000000-0000-0000-0000-000000000000", "other", "serving", "engine"}});
  DaemonProcess daemon("  gemm:\n    enabled: false\n  attention:\n    enabled: false\n  memory:\n    enabled: false\n",
                       "kubelet:\n  pod_resources_socket: " + kubelet.socket() + "\n  interval_seconds: 1\n");
  ::setenv("NODE_NAME", "gpu-node-7", 1);  // as the DaemonSet sets it from spec.nodeName
  daemon.start();
  ::unsetenv("NODE_NAME");
  REQUIRE(daemon.wait_ready());
  std::string metrics;
  REQUIRE(wait_until(
      [&] {
        metrics = daemon.metrics();
        return metrics.find("substrate_device_pod_info{") != std::string::npos;
      },
      std::chrono::seconds(20)));
  CHECK_THAT(metrics, Catch::Contains("pod=\"vllm-0\"") && Catch::Contains("namespace=\"serving\"") &&
                          Catch::Contains("container=\"engine\"") && Catch::Contains("resource=\"nvidia.com/gpu\""));
  CHECK_THAT(metrics, !Catch::Contains("pod=\"other\""));
  CHECK_THAT(metrics, Catch::Contains("substrate_pod_resources_up 1"));
  // The node under kube-state-metrics' and dcgm-exporter's label names; node_exporter's is uname's.
  CHECK(series_value(metrics, "substrate_node_info{node=\"gpu-node-7\",Hostname=\"gpu-node-7\"}") == 1);
  CHECK(series_value(metrics, "substrate_device_pod_info{UUID=\"" + uuid + "\",pod=\"vllm-0\"}") == 1);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait_exit(std::chrono::seconds(15)) == 0);
}
