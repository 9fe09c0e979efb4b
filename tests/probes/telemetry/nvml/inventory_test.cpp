// NVML's inventory (board identity, MIG instances) through the TEST-ONLY NVML stand-in, loaded by
// the production dlopen path.
#include "probes/telemetry/nvml/inventory.hpp"

#include <catch2/catch.hpp>

#include "tests/probes/telemetry/nvml/standin_support.hpp"

using namespace substrate;
namespace support = substrate::telemetry::testing;

namespace {

// GPU 0: MIG enabled with two instances (slots 0 and 2, slot 1 empty); GPU 1: MIG disabled;
// GPU 2: no MIG at all (the driver answers NOT_SUPPORTED).
constexpr const char* kScenario = R"(devices 3
0 uuid GPU-AAAAAAAA-0000-0000-0000-00000000000A
0 pci 00000000:3B:00.0
0 name NVIDIA H100 80GB HBM3
0 vbios 96.00.74.00.01
0 serial 1654923012345
0 board_part_number 692-2G520-0200-000
0 mig.mode 1
0 mig 0 MIG-44444444-0000-0000-0000-000000000004 1 NVIDIA H100 80GB HBM3 MIG 4g.40gb
0 mig 2 MIG-55555555-0000-0000-0000-000000000005 2 NVIDIA H100 80GB HBM3 MIG 3g.40gb
1 uuid GPU-BBBBBBBB-0000-0000-0000-00000000000B
1 pci 00000000:5E:00.0
1 mig.mode 0
2 uuid GPU-CCCCCCCC-0000-0000-0000-00000000000C
2 pci 00000000:86:00.0
)";

}  // namespace

TEST_CASE("nvml: inventory: board identity, and MIG instances with GPU instance id and profile", "[unit]") {
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, kScenario);
  auto gpus = nvml::read_inventory();
  REQUIRE(gpus);
  REQUIRE(gpus->size() == 3);
  CHECK_FALSE((*gpus)[1].mig_enabled);  // MIG disabled
  CHECK_FALSE((*gpus)[2].mig_enabled);  // MIG not supported
  CHECK((*gpus)[1].instances.empty());
  CHECK((*gpus)[2].pci_bus_id == "0000:86:00.0");
  // A board that does not give them (NOT_SUPPORTED): empty, not an error.
  CHECK((*gpus)[2].vbios_version.empty());
  CHECK((*gpus)[2].serial.empty());
  CHECK((*gpus)[2].board_part_number.empty());
  const nvml::GpuInventory& gpu = gpus->front();
  CHECK(gpu.mig_enabled);
  CHECK(gpu.vbios_version == "96.00.74.00.01");
  CHECK(gpu.serial == "1654923012345");
  CHECK(gpu.board_part_number == "692-2G520-0200-000");
  CHECK(gpu.index == 0);
  CHECK(gpu.uuid == "aaaaaaaa-0000-0000-0000-00000000000a");
  CHECK(gpu.pci_bus_id == "0000:3b:00.0");
  CHECK(gpu.name == "NVIDIA H100 80GB HBM3");
  CHECK(gpu.unlisted_reason.empty());
  REQUIRE(gpu.instances.size() == 2);
  CHECK(gpu.instances[0].uuid == "44444444-0000-0000-0000-000000000004");
  CHECK(gpu.instances[0].gpu_instance == 1);
  CHECK(gpu.instances[0].profile == "4g.40gb");
  CHECK(gpu.instances[1].uuid == "55555555-0000-0000-0000-000000000005");
  CHECK(gpu.instances[1].gpu_instance == 2);
  CHECK(gpu.instances[1].profile == "3g.40gb");
}

TEST_CASE("nvml: a MIG GPU whose instances cannot be listed says why, never a partial list", "[unit]") {
  struct Case {
    const char* extra;
    const char* reason;
    const char* detail;
  };
  for (const Case& c : {
           Case{"0 fail nvmlDeviceGetMigDeviceHandleByIndex 4\n", "no_permission",
                "nvmlDeviceGetMigDeviceHandleByIndex"},
           Case{"0 fail nvmlDeviceGetMaxMigDeviceCount 999\n", "enumeration_failed", "nvmlDeviceGetMaxMigDeviceCount"},
           Case{"0 mig.max 1\n", "", ""},  // only slot 0 is looked at: one instance, no error
       }) {
    INFO(c.extra);
    support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string(kScenario) + c.extra);
    auto gpus = nvml::read_inventory();
    REQUIRE(gpus);
    REQUIRE(gpus->size() == 3);
    CHECK(gpus->front().unlisted_reason == c.reason);
    CHECK(gpus->front().detail.find(c.detail) != std::string::npos);
    CHECK(gpus->front().instances.size() == (*c.reason ? 0u : 1u));
  }
  // MIG enabled, no GPU instance created yet.
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR,
                                          "devices 1\n0 uuid GPU-AAAAAAAA-0000-0000-0000-00000000000A\n0 mig.mode 1\n");
  auto gpus = nvml::read_inventory();
  REQUIRE(gpus);
  REQUIRE(gpus->size() == 1);
  CHECK(gpus->front().unlisted_reason == "no_instances");
}

TEST_CASE("nvml: without NVML, or when nvmlInit fails, MIG listing is an error naming why", "[unit]") {
  {
    support::ScopedEnv absent(nvml::kLibraryEnv, "/nonexistent/libnvidia-ml.so.1");
    auto gpus = nvml::read_inventory();
    REQUIRE_FALSE(gpus);
    CHECK(gpus.error().message.find("NVML absent") != std::string::npos);
  }
  support::StandinEnvironment environment(SUBSTRATE_NVML_STANDIN_DIR, std::string("init 9\n") + kScenario);
  auto gpus = nvml::read_inventory();
  REQUIRE_FALSE(gpus);
  CHECK(gpus.error().message.find("nvmlInit") != std::string::npos);
}

TEST_CASE("nvml: the MIG profile is the part of the instance's name after \"MIG\"", "[unit]") {
  CHECK(nvml::mig_profile_of("NVIDIA A100-SXM4-40GB MIG 1g.5gb") == "1g.5gb");
  CHECK(nvml::mig_profile_of("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me") == "1g.10gb+me");
  CHECK(nvml::mig_profile_of("Fake GPU") == "Fake GPU");
}
