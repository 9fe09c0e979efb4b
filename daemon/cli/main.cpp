#include <exception>
#include <iostream>

#include "daemon/cli/cli.hpp"
#include "daemon/worker_main.hpp"
#include "daemon/worker_protocol.hpp"

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == substrate::worker::k_worker_command) {
      return substrate::worker::worker_main(std::vector<std::string>(argv + 2, argv + argc));
    }
    return substrate::cli::run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "substrated: fatal: " << e.what() << "\n";
    return substrate::k_exit_cannot_run;
  }
}
