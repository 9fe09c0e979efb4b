#include <catch2/catch.hpp>

#include "daemon/command_line.hpp"
#include "daemon/probe_command.hpp"

using namespace substrate;
using namespace substrate::cli;

namespace {

const po::options_description& test_options() {
  static const po::options_description options = [] {
    po::options_description d;
    d.add_options()("kernel", po::value<std::string>()->value_name("ID"), "ids")("json", "json")("help,h", "help");
    return d;
  }();
  return options;
}

std::string error_of(const std::vector<std::string>& args, bool positional = false) {
  auto line = parse_command_line(args, test_options(), positional);
  return line ? std::string("(parsed)") : line.error().message;
}

}  // namespace

TEST_CASE("command line: --name=value and --name value are the same", "[unit]") {
  auto adjacent = parse_command_line({"--kernel=gemm", "--json"}, test_options());
  auto next = parse_command_line({"--kernel", "gemm", "--json"}, test_options());
  REQUIRE(adjacent.ok());
  REQUIRE(next.ok());
  CHECK(adjacent->last("kernel") == std::optional<std::string>("gemm"));
  CHECK(next->last("kernel") == std::optional<std::string>("gemm"));
  CHECK(adjacent->has("json"));
  CHECK(adjacent->args_for(test_options()) == next->args_for(test_options()));
  CHECK(next->args_for(test_options()) == std::vector<std::string>{"--kernel=gemm", "--json"});
}

TEST_CASE("command line: repeats keep every value in order, -h is --help", "[unit]") {
  auto line = parse_command_line({"--kernel", "a", "-h", "--kernel=b", "--json", "--json"}, test_options());
  REQUIRE(line.ok());
  CHECK(line->all("kernel") == std::vector<std::string>{"a", "b"});
  CHECK(line->last("kernel") == std::optional<std::string>("b"));
  CHECK(line->has("help"));
  CHECK_FALSE(line->last("missing"));
}

TEST_CASE("command line: bad arguments give one line naming the culprit", "[unit]") {
  CHECK(error_of({"--frobnicate"}) == "unknown option '--frobnicate'");
  CHECK(error_of({"-x"}) == "unknown option '-x'");
  CHECK(error_of({"--kern", "gemm"}) == "unknown option '--kern'");  // no abbreviations
  CHECK(error_of({"--kernel"}) == "--kernel needs a value");
  CHECK(error_of({"--kernel="}) == "--kernel needs a value");
  CHECK(error_of({"--kernel", ""}) == "--kernel needs a value");
  CHECK(error_of({"--json=yes"}) == "--json takes no value");
  CHECK(error_of({"stray"}) == "unexpected argument 'stray'");
  auto positional = parse_command_line({"a", "--json", "b"}, test_options(), true);
  REQUIRE(positional.ok());
  CHECK(positional->positional == std::vector<std::string>{"a", "b"});
}

TEST_CASE("command line: help lines list every option with its value name", "[unit]") {
  const std::string help = render_options(test_options(), 14);
  CHECK(help == "  --kernel ID ids\n  --json      json\n  --help      help\n");
}

TEST_CASE("probe request: --kernel=gemm and --kernel gemm ask for the same run", "[unit]") {
  auto adjacent = parse_probe_request({"--kernel=gemm", "--size=16", "--seed=7", "--mode=exact"});
  auto next = parse_probe_request({"--kernel", "gemm", "--size", "16", "--seed", "7", "--mode", "exact"});
  REQUIRE(adjacent.ok());
  REQUIRE(next.ok());
  CHECK(adjacent->kernels == std::vector<std::string>{"gemm"});
  CHECK(adjacent->kernels == next->kernels);
  CHECK(adjacent->size == next->size);
  CHECK(adjacent->seed == 7);
  CHECK(next->seed == 7);
  CHECK(adjacent->mode == next->mode);
}

TEST_CASE("probe request: repeated options as before: kernels add up, the last value wins", "[unit]") {
  auto request = parse_probe_request({"--kernel", "gemm,attention", "--kernel=memory", "--seed", "1", "--seed", "9",
                                      "--device", "a", "--device", "vulkan0", "--timeout", "5", "--timeout", "7"});
  REQUIRE(request.ok());
  CHECK(request->kernels == std::vector<std::string>{"gemm", "attention", "memory"});
  CHECK(request->seed == 9);
  CHECK(request->device == "vulkan0");
  CHECK(request->timeout_seconds == 7.0);
}

TEST_CASE("probe request: the control socket's args are checked like the CLI's, in one line", "[unit]") {
  auto message = [](const std::vector<std::string>& args) {
    auto request = parse_probe_request(args);
    REQUIRE_FALSE(request.ok());
    CHECK(request.error().kind == ErrorKind::invalid_argument);
    CHECK(request.error().message.find('\n') == std::string::npos);
    return request.error().message;
  };
  CHECK(message({"--json"}) == "unknown option '--json'");  // a CLI-only flag is not the daemon's
  CHECK(message({"--seed"}) == "--seed needs a value");
  CHECK(message({"gemm"}) == "unexpected argument 'gemm'");
  CHECK(message({"--kernel", "nope"}) == "unknown kernel 'nope' (see substrated probe --list)");
  CHECK(message({"--mode=sloppy"}) == "--mode must be exact or random, got 'sloppy'");
  CHECK(message({"--dtype", "f64"}) == "--dtype must be f32, f16 or bf16, got 'f64'");
  CHECK(message({"--seed", "-1"}) == "--seed needs a non-negative integer, got '-1'");
  CHECK(message({"--timeout", "0"}) == "--timeout needs seconds > 0 and at most 86400, got '0'");
  CHECK(message({"--size", "16"}) == "--size needs exactly one --kernel");
  auto none = parse_probe_request({});
  REQUIRE(none.ok());
  CHECK(none->device == "all");
  CHECK(none->kernels.empty());
  CHECK(none->seed == 1);
}
