#include <catch2/catch.hpp>

#include "probes/backends/discovery/one_gpu.hpp"

using namespace substrate;

namespace {

DeviceInfo gpu(const std::string& id, const std::string& backend, const std::string& uuid, const std::string& bus) {
  DeviceInfo info;
  info.id = id;
  info.backend = backend;
  info.name = "NVIDIA H100 80GB HBM3";
  info.uuid = uuid;
  info.pci_bus_id = bus;
  return info;
}

const std::string k_uuid = "ab1200ff-0102-0304-0506-0708090a0bcd";

}  // namespace

TEST_CASE("one GPU: the Vulkan and CUDA views of one GPU are one device, the preferred backend kept", "[unit]") {
  const std::vector<DeviceInfo> infos = {gpu("vulkan0", "vulkan", k_uuid, "0000:3b:00.0"),
                                         gpu("vulkan1", "vulkan", "", ""),  // lavapipe: no twin
                                         gpu("cuda0", "cuda", k_uuid, "0000:3b:00.0")};
  std::vector<std::string> notes;
  CHECK(twins_to_drop(infos, {"cuda", "vulkan"}, notes) == std::vector<std::size_t>{0});
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] ==
        "vulkan: vulkan0 (NVIDIA H100 80GB HBM3) is the GPU of cuda0: probed through cuda (backend_preference)");
  notes.clear();
  CHECK(twins_to_drop(infos, {"vulkan", "cuda"}, notes) == std::vector<std::size_t>{2});
  notes.clear();
  // A backend not listed ranks after the listed ones.
  CHECK(twins_to_drop(infos, {"vulkan"}, notes) == std::vector<std::size_t>{2});
  notes.clear();
  // Whatever the discovery order, the same one is kept: the identity does not depend on it.
  const std::vector<DeviceInfo> reversed = {infos[2], infos[1], infos[0]};
  CHECK(twins_to_drop(reversed, {"cuda", "vulkan"}, notes) == std::vector<std::size_t>{2});
}

TEST_CASE("one GPU: twins by PCI bus id when one view has no UUID; distinct GPUs stay apart", "[unit]") {
  std::vector<std::string> notes;
  CHECK(twins_to_drop({gpu("vulkan0", "vulkan", "", "0000:3b:00.0"), gpu("cuda0", "cuda", k_uuid, "0000:3b:00.0")},
                      {"cuda", "vulkan"}, notes) == std::vector<std::size_t>{0});
  CHECK(same_physical_device(gpu("a", "vulkan", k_uuid, ""), gpu("b", "cuda", k_uuid, "")));
  CHECK_FALSE(same_physical_device(gpu("a", "vulkan", "", ""), gpu("b", "cuda", "", "")));  // nothing known
  CHECK_FALSE(same_physical_device(gpu("a", "vulkan", k_uuid, "0000:3b:00.0"),
                                   gpu("b", "cuda", "11111111-0102-0304-0506-0708090a0bcd", "0000:3c:00.0")));
  // One backend never lists one device twice.
  CHECK_FALSE(same_physical_device(gpu("cuda0", "cuda", k_uuid, ""), gpu("cuda1", "cuda", k_uuid, "")));
  notes.clear();
  CHECK(twins_to_drop({gpu("cuda0", "cuda", k_uuid, "0000:3b:00.0"), gpu("vulkan0", "vulkan", "", "0000:3c:00.0")},
                      {"cuda", "vulkan"}, notes)
            .empty());
  CHECK(notes.empty());
}
