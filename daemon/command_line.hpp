#pragma once
// The one command-line parser behind every subcommand and the control socket's probe requests:
// Boost.Program_options with GNU-style long options (`--name VALUE` or `--name=VALUE`, `-h` for
// `--help`), no abbreviations. A repeated option keeps every value in order; callers take the
// last (`last`) or all of them (`all`), so `--seed 1 --seed 2` means seed 2 and
// `--kernel gemm --kernel memory` means both.
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/value_semantic.hpp>

#include "common/expected.hpp"

namespace substrate::cli {

namespace po = boost::program_options;

// What one command line said, in the order it said it.
struct CommandLine {
  struct Given {
    std::string name;   // the option's long name, without dashes
    std::string value;  // empty for a flag
  };
  std::vector<Given> options;
  std::vector<std::string> positional;  // arguments that are not options, in order

  // Whether option `name` (long name, no dashes) was given at least once.
  bool has(const std::string& name) const;
  // The value of the last occurrence of `name`; nullopt when it was not given.
  std::optional<std::string> last(const std::string& name) const;
  // Every value given for `name`, in order.
  std::vector<std::string> all(const std::string& name) const;
  // The given options that `subset` declares, re-rendered as arguments (`--name=value`, `--flag`)
  // in their order: what the CLI forwards to the daemon for it to parse again.
  std::vector<std::string> args_for(const po::options_description& subset) const;
};

// The semantic of an option that takes one value, shown in help as `value_name` ("--seed N").
po::typed_value<std::string>* takes(const char* value_name);

// Parses `args` (what follows the subcommand) against `options`. Positional arguments are
// collected when `positional_allowed`, else the first one is an error. Returns the command line,
// or invalid_argument with one line naming the culprit: "unknown option '--x'", "--seed needs a
// value", "--json takes no value", "unexpected argument 'x'".
Expected<CommandLine> parse_command_line(const std::vector<std::string>& args, const po::options_description& options,
                                         bool positional_allowed = false);

// The options of `options` as help lines: "  --name VALUE" padded to `column`, then the
// description (a '\n' in it continues at `column`).
std::string render_options(const po::options_description& options, std::size_t column);

}  // namespace substrate::cli
