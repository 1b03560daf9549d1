#include "common/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace lw {
namespace {

std::string os_reason() { return std::strerror(errno); }

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIoOpen, path.string() + ": cannot open: " + os_reason());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string reason = os_reason();
    ::close(fd);
    throw Error(ErrorCode::kIoOpen, path.string() + ": cannot stat: " + reason);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string reason = os_reason();
      ::close(fd);
      throw Error(ErrorCode::kIoMap, path.string() + ": cannot map " + std::to_string(size_) +
                                         " bytes: " + reason);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

std::string read_text_file(const std::filesystem::path& path) {
  MappedFile file(path);
  return std::string(reinterpret_cast<const char*>(file.data()), file.size());
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  OutputFile out(path);
  out.write(text.data(), text.size());
  out.close();
}

OutputFile::OutputFile(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(ErrorCode::kIoOpen, path.string() + ": cannot create: " + os_reason());
  buffer_.reserve(1 << 20);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + size > (1u << 20)) flush();
  if (size >= (1u << 20)) {
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrorCode::kIoWrite, path_.string() + ": write failed: " + os_reason());
      }
      p += n;
      size -= static_cast<size_t>(n);
      offset_ += static_cast<uint64_t>(n);
    }
    return;
  }
  buffer_.append(p, size);
  offset_ += size;
}

void OutputFile::write_zeros(size_t count) {
  static const char kZeros[4096] = {};
  while (count > 0) {
    size_t n = count < sizeof(kZeros) ? count : sizeof(kZeros);
    write(kZeros, n);
    count -= n;
  }
}

void OutputFile::flush() {
  const char* p = buffer_.data();
  size_t size = buffer_.size();
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kIoWrite, path_.string() + ": write failed: " + os_reason());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  buffer_.clear();
}

void OutputFile::close() {
  if (fd_ < 0) return;
  flush();
  if (::fsync(fd_) != 0)
    throw Error(ErrorCode::kIoWrite, path_.string() + ": fsync failed: " + os_reason());
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw Error(ErrorCode::kIoWrite, path_.string() + ": close failed: " + os_reason());
  }
  fd_ = -1;
}

}  // namespace lw
