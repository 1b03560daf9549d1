#include "fragments/store_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "fragments/store.h"

namespace lw {
namespace store_detail {
namespace {

std::string os_reason() { return std::strerror(errno); }

// Bound on the prefix (header + directory + names) read from a file before decoding.
constexpr uint64_t kMaxPrefix = uint64_t{64} << 20;

}  // namespace

InputFd::InputFd(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(ErrorCode::kIoOpen, path.string() + ": cannot open: " + os_reason());
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    std::string reason = os_reason();
    ::close(fd_);
    fd_ = -1;
    throw Error(ErrorCode::kIoOpen, path.string() + ": cannot stat: " + reason);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

InputFd::~InputFd() {
  if (fd_ >= 0) ::close(fd_);
}

InputFd::InputFd(InputFd&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

size_t InputFd::read_at(uint64_t offset, void* buf, size_t n) const {
  size_t done = 0;
  auto* p = static_cast<uint8_t*>(buf);
  while (done < n) {
    ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kIoRead, path_.string() + ": read at offset " +
                                          std::to_string(offset + done) + " failed: " +
                                          os_reason());
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

void InputFd::read_exact(uint64_t offset, void* buf, size_t n) const {
  size_t got = read_at(offset, buf, n);
  if (got != n) {
    throw Error(ErrorCode::kIoRead, path_.string() + ": file ended at " +
                                        std::to_string(offset + got) + " while reading " +
                                        std::to_string(n) + " bytes at offset " +
                                        std::to_string(offset));
  }
}

ChunkBuffer::ChunkBuffer(uint64_t want)
    : size_(static_cast<size_t>(std::clamp<uint64_t>(align_up(want, 4096), 4096, kIoChunk))) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, size_) != 0) throw std::bad_alloc();
  data_ = static_cast<uint8_t*>(p);
}

ChunkBuffer::~ChunkBuffer() { std::free(data_); }

std::filesystem::path strip_trailing_slash(const std::filesystem::path& path) {
  std::string s = path.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::filesystem::path temp_sibling(const std::filesystem::path& path, const std::string& tag) {
  return strip_trailing_slash(path).string() + "." + tag + "-" + std::to_string(::getpid());
}

void remove_quietly(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

void sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIoOpen, dir.string() + ": cannot open folder: " + os_reason());
  int rc = ::fsync(fd);
  std::string reason = rc != 0 ? os_reason() : "";
  ::close(fd);
  if (rc != 0) throw Error(ErrorCode::kIoWrite, dir.string() + ": fsync failed: " + reason);
}

std::vector<std::pair<std::string, std::string>> compare_prefix(const FragmentPrefix& prefix,
                                                                 const ManifestFragment& f) {
  std::vector<std::pair<std::string, std::string>> out;
  const FragmentHeader& h = prefix.header;
  auto field = [&](const std::string& tensor, const std::string& name, const std::string& file_v,
                   const std::string& manifest_v) {
    if (file_v != manifest_v) {
      out.emplace_back(tensor, "field " + name + ": file has " + file_v + ", manifest has " +
                                   manifest_v);
    }
  };
  field("", "role", fragment_role_name(h.role), fragment_role_name(static_cast<uint32_t>(f.role)));
  field("", "layer", std::to_string(h.layer), std::to_string(f.layer));
  field("", "file_size", std::to_string(h.file_size), std::to_string(f.size));
  field("", "n_tensors", std::to_string(h.n_tensors), std::to_string(f.tensors.size()));
  size_t n = std::min<size_t>(prefix.entries.size(), f.tensors.size());
  for (size_t i = 0; i < n; ++i) {
    const FragmentTensorEntry& e = prefix.entries[i];
    const ManifestTensor& t = f.tensors[i];
    if (prefix.names[i] != t.name) {
      out.emplace_back(t.name, "directory entry " + std::to_string(i) + " names \"" +
                                   prefix.names[i] + "\"");
      continue;
    }
    if (e.n_dims < 1 || e.n_dims > 4) {
      out.emplace_back(t.name, "field n_dims: " + std::to_string(e.n_dims) + " (expected 1..4)");
      continue;
    }
    for (uint32_t d = e.n_dims; d < 4; ++d) {
      if (e.ne[d] != 1) out.emplace_back(t.name, "field ne[" + std::to_string(d) + "]: unused, not 1");
    }
    if (std::any_of(std::begin(e.reserved), std::end(e.reserved), [](uint8_t b) { return b != 0; })) {
      out.emplace_back(t.name, "field reserved: not zero");
    }
    field(t.name, "type", type_name(e.type), type_name(static_cast<uint32_t>(t.type)));
    std::string ne_file, ne_manifest;
    for (uint32_t d = 0; d < e.n_dims; ++d) ne_file += (d ? "x" : "") + std::to_string(e.ne[d]);
    for (size_t d = 0; d < t.ne.size(); ++d) ne_manifest += (d ? "x" : "") + std::to_string(t.ne[d]);
    field(t.name, "ne", ne_file, ne_manifest);
    field(t.name, "offset", std::to_string(e.offset), std::to_string(t.offset));
    field(t.name, "size", std::to_string(e.size), std::to_string(t.size));
    field(t.name, "gguf_offset", std::to_string(e.gguf_offset), std::to_string(t.gguf_offset));
    field(t.name, "xxh3", Hash128{e.hash_high, e.hash_low}.hex(), t.xxh3.hex());
  }
  return out;
}

FragmentPrefix read_prefix(const InputFd& in, const std::string& file) {
  uint8_t raw[sizeof(FragmentHeader)];
  size_t got = in.read_at(0, raw, sizeof(raw));
  FragmentHeader h = fragment_decode_header(raw, got, file);
  uint64_t want = std::min(h.data_offset, in.size());
  if (want > kMaxPrefix) {
    throw Error(ErrorCode::kFragHeader, "fragment " + file + ": data_offset " +
                                            std::to_string(h.data_offset) + " exceeds the limit " +
                                            std::to_string(kMaxPrefix));
  }
  std::vector<uint8_t> bytes(want);
  in.read_exact(0, bytes.data(), bytes.size());
  return fragment_decode_prefix(bytes.data(), bytes.size(), file);
}

}  // namespace store_detail

// ---- LayerRange / FragmentSelection ----

std::string LayerRange::to_string() const {
  return std::to_string(begin) + "-" + std::to_string(end - 1);
}

LayerRange LayerRange::parse(const std::string& text, int n_layers) {
  auto number = [&](std::string_view s, int* out) {
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, *out);
    return !s.empty() && ec == std::errc() && ptr == end;
  };
  int first = 0, last = 0;
  size_t dash = text.find('-');
  bool ok = dash == std::string::npos
                ? number(text, &first) && (last = first, true)
                : number(std::string_view(text).substr(0, dash), &first) &&
                      number(std::string_view(text).substr(dash + 1), &last);
  if (!ok || first < 0 || last < 0) {
    throw Error(ErrorCode::kCliArgument, "layer range \"" + text +
                                             "\": expected \"A-B\" (inclusive) or \"N\"");
  }
  if (last < first || last >= n_layers) {
    throw Error(ErrorCode::kFragLayerRange,
                "layer range \"" + text + "\" is empty or outside the model's layers 0-" +
                    std::to_string(n_layers - 1));
  }
  return LayerRange{first, last + 1};
}

bool FragmentSelection::includes(const ManifestFragment& f) const {
  if (all) return true;
  switch (f.role) {
    case FragmentRole::GgufHeader: return false;
    case FragmentRole::Embedding:
    case FragmentRole::Output: return head;
    case FragmentRole::Layer: return layers.has_value() && layers->contains(f.layer);
  }
  return false;
}

}  // namespace lw
