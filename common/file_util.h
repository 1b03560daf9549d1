// File access shared by every module: read-only memory maps, whole-file reads, writes that
// report errno with the path, and overflow-safe size arithmetic. All failures are lw::Error
// (LW-IO-*) naming the path and the OS reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace lw {

// A read-only mapping of a whole file. Empty files map to data()==nullptr, size()==0.
// Movable, not copyable; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const std::filesystem::path& path);
// Writes `text` to `path` (truncating), fsyncs, and reports failures as LW-IO-003.
void write_text_file(const std::filesystem::path& path, std::string_view text);

// A buffered, append-only output file that counts bytes and reports errors with its path.
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  void write(const void* data, size_t size);
  void write_zeros(size_t count);
  uint64_t offset() const { return offset_; }
  // Flushes, fsyncs and closes; must be called for the data to count as written.
  void close();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string buffer_;
  void flush();
};

// Checked arithmetic for sizes read from untrusted input: returns false on overflow.
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace lw
