#include "probes/diagnosis/dump.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "probes/core/registry.hpp"
#include "probes/diagnosis/npy.hpp"

namespace substrate {
namespace fs = std::filesystem;
namespace {

std::string safe_name(std::string text) {
  for (char& c : text) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) c = '_';
  }
  if (text.empty() || text == "." || text == "..") text = "_" + text;
  return text;
}

struct Written {
  nlohmann::json manifest = nlohmann::json::object();
  nlohmann::json layers = nlohmann::json::array();
};

Status write_array(const fs::path& dir, const std::string& file, const Expected<std::string>& encoded,
                   const std::vector<std::uint64_t>& shape, const char* dtype, const std::string& what, Written& out) {
  TRY(encoded);
  TRY(write_file((dir / file).string(), *encoded));
  out.manifest[file] = {{"shape", shape}, {"dtype", dtype}, {"what", what}};
  return ok_status();
}

Status write_into(const fs::path& dir, const ProbeResult& result) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error{ErrorKind::io_error, "cannot create " + dir.string() + ": " + ec.message()};
  Written out;
  if (result.tensors && result.tensors->golden && !result.tensors->output_bits.empty()) {
    const RunTensors& t = *result.tensors;
    std::vector<float> output(t.output_bits.size());
    for (std::size_t i = 0; i < output.size(); ++i) output[i] = std::bit_cast<float>(t.output_bits[i]);
    TRY(write_array(dir, "output.npy", npy::encode_f32(t.output_shape, output), t.output_shape, "float32",
                    std::string("device output as read back") + (result.drill() ? " (DRILL: fault injected)" : ""),
                    out));
    TRY(write_array(dir, "golden.npy", npy::encode_f64(t.output_shape, t.golden->value), t.output_shape, "float64",
                    "CPU golden in double precision", out));
    if (!t.golden->bound.empty()) {
      TRY(write_array(dir, "bound.npy", npy::encode_f64(t.output_shape, t.golden->bound), t.output_shape, "float64",
                      "per-element bound on |output - golden| (random mode)", out));
    }
    for (std::size_t i = 0; i < t.layers.size(); ++i) {
      const RunTensors::Layer& layer = t.layers[i];
      char prefix[32];
      std::snprintf(prefix, sizeof prefix, "layer%02zu_", i);
      const std::string stem = prefix + safe_name(layer.name);
      std::vector<float> values(layer.output_bits.size());
      for (std::size_t j = 0; j < values.size(); ++j) values[j] = std::bit_cast<float>(layer.output_bits[j]);
      TRY(write_array(dir, stem + ".output.npy", npy::encode_f32(layer.shape, values), layer.shape, "float32",
                      "device output of layer '" + layer.name + "'", out));
      TRY(write_array(dir, stem + ".golden.npy", npy::encode_f64(layer.shape, layer.golden), layer.shape, "float64",
                      "CPU golden of layer '" + layer.name + "'", out));
      TRY(write_array(dir, stem + ".bound.npy", npy::encode_f64(layer.shape, layer.bound), layer.shape, "float64",
                      "bound of layer '" + layer.name + "'", out));
      out.layers.push_back({{"name", layer.name},
                            {"output", stem + ".output.npy"},
                            {"golden", stem + ".golden.npy"},
                            {"bound", stem + ".bound.npy"}});
    }
    for (const DumpInput& input : regenerate_inputs(result.spec)) {
      TRY(write_array(dir, input.name + ".npy", npy::encode_f32(input.shape, input.values), input.shape, "float32",
                      "input '" + input.name + "' regenerated on the CPU from the shared generator (seed " +
                          std::to_string(result.spec.seed) +
                          "); the device generated its own copy on the device from the same bits",
                      out));
    }
  }
  const nlohmann::json result_json = result;
  TRY(write_file(dir / "result.json", result_json.dump(2) + "\n"));
  out.manifest["result.json"] = {{"what", "probe result (replay: substrated probe --replay result.json)"}};
  nlohmann::json manifest = {
      {"format", "substrated-dump-1"}, {"device", result.device.id}, {"spec_key", spec_key(result.spec)},
      {"seed", result.spec.seed},      {"drill", result.drill()},    {"status", to_string(result.status)},
      {"files", out.manifest}};
  if (!out.layers.empty()) manifest["layers"] = out.layers;
  return write_file(dir / "manifest.json", manifest.dump(2) + "\n");
}

std::uint64_t tree_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

}  // namespace

std::string dump_directory_name(const ProbeResult& result) {
  std::string key = spec_key(result.spec);
  std::replace(key.begin(), key.end(), '/', '_');
  return safe_name(key + "-seed" + std::to_string(result.spec.seed) + (result.drill() ? "-drill" : ""));
}

std::vector<DumpInput> regenerate_inputs(const ProbeSpec& spec) {
  const ProbeDescriptor* probe = probe_registry().find(spec.probe);
  return probe ? probe->dump_inputs(spec) : std::vector<DumpInput>{};
}

Expected<std::string> write_dump(const std::string& root, const ProbeResult& result) {
  const fs::path dir = fs::path(root) / safe_name(result.device.id) / dump_directory_name(result);
  TRY(write_into(dir, result));
  return dir.string();
}

Expected<std::string> keep_failure_dump(const std::string& root, const ProbeResult& result, std::uint64_t max_bytes) {
  const fs::path device_dir = fs::path(root) / safe_name(result.device.id);
  const fs::path final_dir = device_dir / safe_name(result.spec.probe + "-last-failure");
  const fs::path temp_dir = device_dir / safe_name("." + result.spec.probe + "-last-failure.tmp");
  std::error_code ec;
  fs::remove_all(temp_dir, ec);
  Status written = write_into(temp_dir, result);
  if (!written) {
    fs::remove_all(temp_dir, ec);
    return written.error();
  }
  const std::uint64_t own = tree_bytes(temp_dir);
  if (own > max_bytes) {
    fs::remove_all(temp_dir, ec);
    return Error{ErrorKind::invalid_argument, "dump of " + spec_key(result.spec) + " needs " + std::to_string(own) +
                                                  " bytes, above the dump budget of " + std::to_string(max_bytes)};
  }
  fs::remove_all(final_dir, ec);
  fs::rename(temp_dir, final_dir, ec);
  if (ec) return Error{ErrorKind::io_error, "cannot move the dump into " + final_dir.string() + ": " + ec.message()};
  // Evict the oldest other "*-last-failure" dumps until the whole tree fits the budget.
  struct Entry {
    fs::path path;
    fs::file_time_type time;
    std::uint64_t bytes;
  };
  std::vector<Entry> others;
  for (fs::directory_iterator devices(root, ec), end; !ec && devices != end; devices.increment(ec)) {
    if (!devices->is_directory()) continue;
    std::error_code inner;
    for (fs::directory_iterator dumps(devices->path(), inner); !inner && dumps != end; dumps.increment(inner)) {
      const std::string name = dumps->path().filename().string();
      if (!dumps->is_directory() || dumps->path() == final_dir || !name.ends_with("-last-failure")) continue;
      std::error_code time_ec;
      others.push_back(
          {dumps->path(), fs::last_write_time(dumps->path() / "result.json", time_ec), tree_bytes(dumps->path())});
    }
  }
  std::uint64_t total = own;
  for (const Entry& e : others) total += e.bytes;
  std::sort(others.begin(), others.end(), [](const Entry& a, const Entry& b) { return a.time < b.time; });
  for (const Entry& e : others) {
    if (total <= max_bytes) break;
    fs::remove_all(e.path, ec);
    total -= e.bytes;
  }
  return final_dir.string();
}

}  // namespace substrate
