#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "daemon/device_changes.hpp"
#include "daemon/state_store.hpp"

using namespace substrate;
namespace fs = std::filesystem;

namespace {

DeviceInfo gpu() {
  DeviceInfo info;
  info.id = "vulkan0";
  info.backend = "vulkan";
  info.name = "NVIDIA H100 80GB HBM3";
  info.vendor = "nvidia";
  info.driver = "NVIDIA 550.54.15";
  info.device_type = "discrete";
  info.uuid = "11111111-2222-3333-4444-555555555555";
  info.pci_bus_id = "0000:65:00.0";
  info.api_version = "1.3.277";
  info.memory_bytes = 85899345920ull;
  info.compute_units = 132;
  info.kernel_build = "spirv-0123456789abcdef";
  return info;
}

std::string key_of(const DeviceInfo& info) { return info.uuid.empty() ? info.id : info.uuid; }

// The state as a previous daemon run wrote it, read back from disk.
std::map<std::string, DeviceRecord> stored(const std::vector<DeviceInfo>& devices) {
  const fs::path dir = fs::temp_directory_path() / ("substrate-devchg-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  State state;
  for (const DeviceInfo& d : devices) state.devices[key_of(d)] = device_record(d, 1000.0);
  StateStore store(dir.string());
  REQUIRE(store.save(state).ok());
  std::string note;
  State loaded = store.load(&note);
  INFO(note);
  fs::remove_all(dir);
  REQUIRE(loaded.devices.size() == devices.size());
  return loaded.devices;
}

DeviceChanges detect(const std::vector<DeviceInfo>& before, const DeviceInfo& now) {
  return detect_device_changes(stored(before), key_of(now), device_record(now, 2000.0));
}

}  // namespace

TEST_CASE("device_changes: an unchanged device reports nothing; an unknown one is first seen", "[unit]") {
  const DeviceChanges same = detect({gpu()}, gpu());
  CHECK_FALSE(same.any());
  CHECK_FALSE(same.first_seen);
  CHECK_FALSE(same.reset_baselines);
  CHECK(describe(same) == "unchanged");

  DeviceInfo other = gpu();
  other.uuid = "99999999-2222-3333-4444-555555555555";
  other.pci_bus_id = "0000:b3:00.0";
  const DeviceChanges fresh = detect({gpu()}, other);
  CHECK(fresh.first_seen);
  CHECK_FALSE(fresh.any());
  CHECK_FALSE(fresh.reset_baselines);
}

TEST_CASE("device_changes: a driver string change is detected and resets baselines", "[unit]") {
  DeviceInfo now = gpu();
  now.driver = "NVIDIA 555.42.02";
  const DeviceChanges changes = detect({gpu()}, now);
  REQUIRE(changes.changed.size() == 1);
  CHECK(changes.changed[0].field == "driver");
  CHECK(changes.changed[0].before == "NVIDIA 550.54.15");
  CHECK(changes.changed[0].after == "NVIDIA 555.42.02");
  CHECK(changes.reset_baselines);
  CHECK(changes.reset_reasons == std::vector<std::string>{"driver_change"});
  CHECK(changes.what() == std::vector<std::string>{"driver"});
  CHECK(describe(changes) == "driver 'NVIDIA 550.54.15' -> 'NVIDIA 555.42.02'; baselines reset");
  const nlohmann::json doc = changes;
  CHECK(doc.at("changed").at(0).at("resets_baselines") == true);
}

TEST_CASE("device_changes: every recorded field is compared; only some reset baselines", "[unit]") {
  struct Case {
    const char* field;
    void (*mutate)(DeviceInfo&);
    bool resets;
  };
  const Case cases[] = {
      {"name", [](DeviceInfo& d) { d.name = "NVIDIA H100 PCIe"; }, true},
      {"driver", [](DeviceInfo& d) { d.driver = "other"; }, true},
      {"api_version", [](DeviceInfo& d) { d.api_version = "1.3.280"; }, true},
      {"kernel_build", [](DeviceInfo& d) { d.kernel_build = "spirv-fedcba9876543210"; }, true},
      {"pci_bus_id", [](DeviceInfo& d) { d.pci_bus_id = "0000:66:00.0"; }, false},
      {"memory_bytes", [](DeviceInfo& d) { d.memory_bytes = 42949672960ull; }, false},
      {"compute_units", [](DeviceInfo& d) { d.compute_units = 66; }, false},
      {"vendor", [](DeviceInfo& d) { d.vendor = "0x10de"; }, false},
      {"device_type", [](DeviceInfo& d) { d.device_type = "virtual"; }, false},
  };
  for (const Case& c : cases) {
    INFO(c.field);
    DeviceInfo now = gpu();
    c.mutate(now);
    const DeviceChanges changes = detect({gpu()}, now);
    REQUIRE(changes.changed.size() == 1);
    CHECK(changes.changed[0].field == c.field);
    CHECK(changes.reset_baselines == c.resets);
    CHECK_FALSE(changes.replaced_key);
  }
  // Several at once, reported in recorded order.
  DeviceInfo now = gpu();
  now.driver = "d2";
  now.api_version = "1.4.0";
  now.kernel_build = "k2";
  now.memory_bytes = 1;
  const DeviceChanges many = detect({gpu()}, now);
  CHECK(many.what() == std::vector<std::string>{"driver", "api_version", "kernel_build", "memory_bytes"});
  CHECK(many.reset_reasons == std::vector<std::string>{"driver_change", "kernel_change"});  // one reset each
}

TEST_CASE("device_changes: a GPU swapped into the same slot is a new device", "[unit]") {
  DeviceInfo swapped = gpu();
  swapped.uuid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";  // same PCI bus id, different UUID
  DeviceInfo neighbour = gpu();
  neighbour.uuid = "77777777-2222-3333-4444-555555555555";
  neighbour.pci_bus_id = "0000:b3:00.0";
  const DeviceChanges changes = detect({neighbour, gpu()}, swapped);
  REQUIRE(changes.replaced_key);
  CHECK(*changes.replaced_key == gpu().uuid);
  CHECK(changes.replaced_uuid == gpu().uuid);
  CHECK_FALSE(changes.first_seen);
  CHECK(changes.reset_baselines);
  CHECK(changes.reset_reasons == std::vector<std::string>{"device_change"});
  CHECK(changes.what() == std::vector<std::string>{"new_device"});
  CHECK_THAT(describe(changes), Catch::Contains("a different device is in this slot"));
}

TEST_CASE("device_changes: devices without UUID are keyed by id; older records lack new fields", "[unit]") {
  DeviceInfo cpu = gpu();
  cpu.uuid.clear();
  cpu.pci_bus_id.clear();
  DeviceInfo now = cpu;
  now.driver = "llvmpipe 23.0";
  const DeviceChanges changes = detect({cpu}, now);
  REQUIRE(changes.changed.size() == 1);
  CHECK(changes.changed[0].field == "driver");

  // A record from before memory_bytes/compute_units were recorded: no false change.
  std::map<std::string, DeviceRecord> old = stored({gpu()});
  old.begin()->second.fields.erase("memory_bytes");
  old.begin()->second.fields.erase("compute_units");
  const DeviceChanges upgraded = detect_device_changes(old, key_of(gpu()), device_record(gpu(), 3000.0));
  CHECK_FALSE(upgraded.any());
  // Every recorded field is written; the board identity only where NVML gave it.
  DeviceInfo board = gpu();
  board.vbios_version = "96.00.74.00.01";
  board.serial = "1654923012345";
  board.board_part_number = "692-2G520-0200-000";
  CHECK(device_record(board, 0).fields.size() == recorded_device_fields().size());
  CHECK(device_record(gpu(), 0).fields.size() == recorded_device_fields().size() - 3);
}

TEST_CASE("device_changes: VBIOS, serial and board part number are compared where NVML gave them", "[unit]") {
  DeviceInfo board = gpu();
  board.vbios_version = "96.00.74.00.01";
  board.serial = "1654923012345";
  board.board_part_number = "692-2G520-0200-000";
  struct Case {
    const char* field;
    void (*mutate)(DeviceInfo&);
    const char* reason;
  };
  const Case cases[] = {
      {"vbios_version", [](DeviceInfo& d) { d.vbios_version = "96.00.89.00.01"; }, "driver_change"},
      {"serial", [](DeviceInfo& d) { d.serial = "1654923099999"; }, "device_change"},
      {"board_part_number", [](DeviceInfo& d) { d.board_part_number = "692-2G520-0202-000"; }, "device_change"},
  };
  for (const Case& c : cases) {
    INFO(c.field);
    DeviceInfo now = board;
    c.mutate(now);
    const DeviceChanges changes = detect({board}, now);
    REQUIRE(changes.changed.size() == 1);
    CHECK(changes.changed[0].field == c.field);
    CHECK(changes.what() == std::vector<std::string>{c.field});
    CHECK(changes.reset_baselines);
    CHECK(changes.reset_reasons == std::vector<std::string>{c.reason});
  }
  // NVML absent at this start (or a board that does not say): no change, and nothing recorded.
  const DeviceChanges unread = detect({board}, gpu());
  CHECK_FALSE(unread.any());
  CHECK(device_record(gpu(), 0).fields.count("serial") == 0);
  // Read for the first time (a state written before they were recorded): no change either.
  CHECK_FALSE(detect({gpu()}, board).any());
}

TEST_CASE("device_changes: the MIG instances of one GPU share its bus id and are not each other's swap", "[unit]") {
  DeviceInfo first = gpu();
  first.id = "cuda0-mig1";
  first.uuid = "44444444-0000-0000-0000-000000000004";
  first.mig_parent_uuid = gpu().uuid;
  first.mig_gpu_instance = 1;
  DeviceInfo second = first;
  second.id = "cuda0-mig2";
  second.uuid = "55555555-0000-0000-0000-000000000005";
  second.mig_gpu_instance = 2;
  const DeviceChanges seen = detect({first}, second);
  CHECK(seen.first_seen);
  CHECK_FALSE(seen.any());
  // Instance 1 destroyed and created again (a new UUID in the same GPU instance): a new device.
  DeviceInfo recreated = first;
  recreated.uuid = "66666666-0000-0000-0000-000000000006";
  const DeviceChanges swapped = detect({first, second}, recreated);
  REQUIRE(swapped.replaced_key);
  CHECK(*swapped.replaced_key == first.uuid);
  CHECK(swapped.reset_baselines);
}
