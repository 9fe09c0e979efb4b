#include <exception>
#include <iostream>

#include "daemon/cli.hpp"

int main(int argc, char** argv) {
  try {
    return substrate::cli::run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "substrated: fatal: " << e.what() << "\n";
    return substrate::cli::k_exit_cannot_run;
  }
}
