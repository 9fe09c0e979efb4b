#include "common/file_io.hpp"

#include <unistd.h>

#include <sys/stat.h>
#include <catch2/catch.hpp>
#include <cerrno>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/probes/telemetry/test_support.hpp"

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
  const std::string path =
      (std::filesystem::temp_directory_path() / ("substrated-read-file-missing-" + std::to_string(::getpid())) / "none")
          .string();
  auto read = read_file(path);
  REQUIRE_FALSE(read);
  CHECK(read.error().step == ReadFileError::Step::open);
  CHECK(read.error().error_number == ENOENT);
  CHECK(read.error().message == "cannot open " + path + ": No such file or directory");
}

TEST_CASE("read_file: a directory is refused as not a regular file", "[unit]") {
  const std::string path = std::filesystem::temp_directory_path().string();
  auto read = read_file(path);
  REQUIRE_FALSE(read);
  CHECK(read.error().step == ReadFileError::Step::not_regular);
  CHECK(read.error().message == path + ": not a regular file (a directory)");
}

TEST_CASE("read_file: a FIFO with no writer is refused at once instead of blocking", "[unit]") {
  const std::filesystem::path fifo =
      std::filesystem::temp_directory_path() / ("substrated-file-io-fifo-" + std::to_string(::getpid()));
  std::filesystem::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto read = read_file(fifo.string());
  std::filesystem::remove(fifo);
  REQUIRE_FALSE(read);
  CHECK(read.error().step == ReadFileError::Step::not_regular);
  CHECK(read.error().message == fifo.string() + ": not a regular file (a FIFO)");
}

TEST_CASE("write_file and write_file_atomic: contents round-trip; a missing directory is an io_error", "[unit]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("substrated-file-io-write-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string plain = (dir / "plain").string(), atomic = (dir / "atomic").string();
  REQUIRE(substrate::write_file(plain, std::string("a\0b", 3)).ok());
  CHECK(*read_file(plain) == std::string("a\0b", 3));
  REQUIRE(substrate::write_file_atomic(atomic, "first").ok());
  REQUIRE(substrate::write_file_atomic(atomic, "second").ok());
  CHECK(*read_file(atomic) == "second");

  // A temp file of a writer that no longer exists (pid 2^22 + 1 is above Linux's pid_max) goes;
  // nothing but the target remains.
  { std::ofstream((dir / "atomic.tmp.4194305").string()) << "stale"; }
  REQUIRE(substrate::write_file_atomic(atomic, "third").ok());
  CHECK_FALSE(std::filesystem::exists(dir / "atomic.tmp.4194305"));
  CHECK(*read_file(atomic) == "third");

  const auto missing = substrate::write_file_atomic((dir / "no" / "such").string(), "x");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == substrate::ErrorKind::io_error);
  CHECK(missing.error().message.find("cannot create " + (dir / "no" / "such").string() + ".tmp.") == 0);
  std::filesystem::remove_all(dir);
}

namespace {

substrate::Expected<int> half(int value) {
  if (value % 2 != 0)
    return substrate::Error{substrate::ErrorKind::invalid_argument, std::to_string(value) + " is odd"};
  return value / 2;
}

substrate::Expected<int> quarter(int value) {
  TRY_ASSIGN(const int h, half(value));
  TRY_ASSIGN(const int q, half(h));
  return q;
}

substrate::Status check_even(int value) {
  TRY(half(value));
  return substrate::ok_status();
}

}  // namespace

TEST_CASE("TRY and TRY_ASSIGN return the first error and pass values through", "[unit]") {
  CHECK(*quarter(12) == 3);
  CHECK(quarter(6).error().message == "3 is odd");
  CHECK(quarter(5).error().message == "5 is odd");
  CHECK(check_even(4).ok());
  CHECK(check_even(7).error().kind == substrate::ErrorKind::invalid_argument);
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
