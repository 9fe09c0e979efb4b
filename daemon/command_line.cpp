#include "daemon/command_line.hpp"

#include <algorithm>

#include <boost/program_options/errors.hpp>
#include <boost/program_options/parsers.hpp>

namespace substrate::cli {
namespace {

Error bad(const std::string& message) { return Error{ErrorKind::invalid_argument, message}; }

// Long options with the value adjacent (`--kernel=gemm`) or next (`--kernel gemm`), `-h`, and
// nothing guessed: `--kern` is unknown, not `--kernel`.
constexpr int k_style = po::command_line_style::allow_long | po::command_line_style::long_allow_adjacent |
                        po::command_line_style::long_allow_next | po::command_line_style::allow_short |
                        po::command_line_style::allow_dash_for_short | po::command_line_style::short_allow_next;

}  // namespace

po::typed_value<std::string>* takes(const char* value_name) { return po::value<std::string>()->value_name(value_name); }

bool CommandLine::has(const std::string& name) const {
  return std::any_of(options.begin(), options.end(), [&](const Given& g) { return g.name == name; });
}

std::optional<std::string> CommandLine::last(const std::string& name) const {
  for (auto it = options.rbegin(); it != options.rend(); ++it) {
    if (it->name == name) return it->value;
  }
  return std::nullopt;
}

std::vector<std::string> CommandLine::all(const std::string& name) const {
  std::vector<std::string> values;
  for (const Given& g : options) {
    if (g.name == name) values.push_back(g.value);
  }
  return values;
}

std::vector<std::string> CommandLine::args_for(const po::options_description& subset) const {
  std::vector<std::string> args;
  for (const Given& g : options) {
    const po::option_description* d = subset.find_nothrow(g.name, false);
    if (!d) continue;
    args.push_back("--" + g.name + (d->semantic()->max_tokens() > 0 ? "=" + g.value : std::string()));
  }
  return args;
}

Expected<CommandLine> parse_command_line(const std::vector<std::string>& args, const po::options_description& options,
                                         bool positional_allowed) {
  po::parsed_options parsed(&options);
  try {
    parsed = po::command_line_parser(args).options(options).style(k_style).run();
  } catch (const po::unknown_option& e) {
    return bad("unknown option '" + e.get_option_name() + "'");
  } catch (const po::invalid_command_line_syntax& e) {
    if (e.kind() == po::invalid_syntax::extra_parameter) return bad(e.get_option_name() + " takes no value");
    if (e.kind() == po::invalid_syntax::missing_parameter || e.kind() == po::invalid_syntax::empty_adjacent_parameter) {
      return bad(e.get_option_name() + " needs a value");
    }
    return bad(e.what());
  } catch (const po::error& e) {
    return bad(e.what());
  }
  CommandLine line;
  for (const po::option& o : parsed.options) {
    if (o.string_key.empty()) {
      if (!positional_allowed) return bad("unexpected argument '" + o.value.at(0) + "'");
      line.positional.push_back(o.value.at(0));
      continue;
    }
    const po::option_description& d = options.find(o.string_key, false);
    std::string value = o.value.empty() ? std::string() : o.value.front();
    if (d.semantic()->max_tokens() > 0 && value.empty()) return bad("--" + o.string_key + " needs a value");
    line.options.push_back({o.string_key, std::move(value)});
  }
  return line;
}

std::string render_options(const po::options_description& options, std::size_t column) {
  std::string text;
  for (const auto& d : options.options()) {
    std::string head = "  --" + d->long_name();
    const std::string parameter = d->format_parameter();
    if (!parameter.empty()) head += " " + parameter;
    head += head.size() + 1 < column ? std::string(column - head.size(), ' ') : std::string(" ");
    std::string description = d->description();
    for (std::size_t at = description.find('\n'); at != std::string::npos; at = description.find('\n', at + 1)) {
      description.insert(at + 1, column, ' ');
    }
    text += head + description + "\n";
  }
  return text;
}

}  // namespace substrate::cli
