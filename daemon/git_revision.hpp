#pragma once
// The git commit substrated was built from (12 hex digits), or "unknown" outside a git checkout;
// defined in a file daemon/CMakeLists.txt generates when CMake configures.
namespace substrate {
const char* git_revision();
}  // namespace substrate
