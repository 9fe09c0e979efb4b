#include "common/read_file.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <string>

#include "tests/telemetry/test_support.hpp"

using substrate::read_file;
using substrate::ReadFileError;
using substrate::telemetry::testing::ScratchFile;

TEST_CASE("read_file: the whole file, NUL bytes included, across several reads", "[unit]") {
  std::string contents;
  for (int i = 0; contents.size() < 200000; ++i) contents += std::to_string(i) + '\0';
  ScratchFile file("read-file-whole", contents);
  auto read = read_file(file.path().string());
  REQUIRE(read);
  CHECK(*read == contents);
}

TEST_CASE("read_file: a missing file fails at open with ENOENT and names the path", "[unit]") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("substrated-read-file-missing-" + std::to_string(::getpid())) / "none")
                               .string();
  auto read = read_file(path);
  REQUIRE_FALSE(read);
  CHECK(read.error().step == ReadFileError::Step::open);
  CHECK(read.error().error_number == ENOENT);
  CHECK(read.error().message == "cannot open " + path + ": No such file or directory");
}

TEST_CASE("read_file: a directory fails at read with EISDIR", "[unit]") {
  const std::string path = std::filesystem::temp_directory_path().string();
  auto read = read_file(path);
  REQUIRE_FALSE(read);
  CHECK(read.error().step == ReadFileError::Step::read);
  CHECK(read.error().error_number == EISDIR);
  CHECK(read.error().message == "cannot read " + path + ": Is a directory");
}

TEST_CASE("read_file: max_bytes is allowed, one byte more is too_large naming path and limit", "[unit]") {
  ScratchFile file("read-file-limit", std::string(100, 'x'));
  const std::string path = file.path().string();
  auto at_limit = read_file(path, 100);
  REQUIRE(at_limit);
  CHECK(*at_limit == std::string(100, 'x'));

  auto over = read_file(path, 99);
  REQUIRE_FALSE(over);
  CHECK(over.error().step == ReadFileError::Step::too_large);
  CHECK(over.error().error_number == 0);
  CHECK(over.error().message == path + ": larger than 99 bytes");
}
