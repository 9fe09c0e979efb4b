// Test-only helper for the [state] crash-safety test: loads two state bodies, says "ready" on
// stdout, then saves them alternately (second, first, second, ...) into STATE_DIR through
// StateStore until it is killed. A separate small executable rather than fork() of the test
// binary, whose size makes fork slow (especially under sanitizers).
//
//   substrate_state_writer STATE_DIR FIRST_BODY_FILE SECOND_BODY_FILE
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/state_store.hpp"

using namespace substrate;

namespace {

bool load_body(const char* path, State& state) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = deserialize_state(text.str());
  if (!in || !parsed) {
    std::fprintf(stderr, "state_writer: cannot use %s\n", path);
    return false;
  }
  state = std::move(parsed).value();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s STATE_DIR FIRST_BODY_FILE SECOND_BODY_FILE\n", argv[0]);
    return 2;
  }
  State states[2];
  if (!load_body(argv[2], states[0]) || !load_body(argv[3], states[1])) return 2;
  StateStore store(argv[1]);
  if (::write(STDOUT_FILENO, "ready\n", 6) != 6) return 2;
  for (unsigned long n = 1;; ++n) {
    auto saved = store.save(states[n % 2]);
    if (!saved) {
      std::fprintf(stderr, "state_writer: %s\n", saved.error().message.c_str());
      return 3;
    }
  }
}
