// store_split: GGUF -> fragment files + manifest.json, in two sequential passes over the GGUF
// (1: whole-file and per-tensor xxh3 + non-zero gap bytes; 2: copy into fragment files while
// hashing each file), through one kIoChunk buffer so memory does not grow with the model.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "fragments/arch.h"
#include "fragments/store.h"
#include "fragments/store_internal.h"

namespace lw {
namespace {

using store_detail::ChunkBuffer;
using store_detail::InputFd;

// Non-tensor bytes of the data section we are willing to carry in the manifest.
constexpr uint64_t kMaxGapBytes = uint64_t{1} << 20;

struct Progress {
  const ProgressFn& fn;
  uint64_t done = 0;
  uint64_t total = 0;
  void add(uint64_t n) {
    done += n;
    if (fn) fn(done, total);
  }
};

// Collects non-zero bytes outside the tensors as GgufGaps: one gap per run of bytes between
// the first and last non-zero byte of an inter-tensor region.
class GapCollector {
 public:
  void scan(const uint8_t* p, uint64_t offset, uint64_t n, size_t region) {
    for (uint64_t i = 0; i < n; ++i) {
      if (p[i] == 0) continue;
      uint64_t at = offset + i;
      if (open_ && region_ == region) {
        uint64_t end = gap_.offset + bytes_.size();
        bytes_.append(at - end, '\0');
      } else {
        flush();
        open_ = true;
        region_ = region;
        gap_.offset = at;
      }
      bytes_.push_back(static_cast<char>(p[i]));
      if (bytes_.size() + recorded_ > kMaxGapBytes) {
        throw Error(ErrorCode::kFragGgufGaps,
                    "more than " + std::to_string(kMaxGapBytes) +
                        " bytes between tensors in the GGUF data section are not zero (first at "
                        "data offset " + std::to_string(gaps_.empty() ? gap_.offset : gaps_[0].offset) + ")");
      }
    }
  }
  std::vector<GgufGap> finish() {
    flush();
    return std::move(gaps_);
  }

 private:
  void flush() {
    if (!open_) return;
    static constexpr char kDigits[] = "0123456789abcdef";
    gap_.hex.clear();
    for (unsigned char c : bytes_) {
      gap_.hex.push_back(kDigits[c >> 4]);
      gap_.hex.push_back(kDigits[c & 15]);
    }
    recorded_ += bytes_.size();
    gaps_.push_back(gap_);
    bytes_.clear();
    open_ = false;
  }
  bool open_ = false;
  size_t region_ = 0;
  GgufGap gap_;
  std::string bytes_;
  uint64_t recorded_ = 0;
  std::vector<GgufGap> gaps_;
};

struct Pass1 {
  Hash128 file_hash;
  std::vector<Hash128> tensor_hash;  // by index in GgufFile::tensors()
  std::vector<GgufGap> gaps;
};

// One sequential read of the whole GGUF.
Pass1 hash_source(const GgufFile& g, const InputFd& in, ChunkBuffer& buf, Progress& progress) {
  const auto& tensors = g.tensors();
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  const uint64_t base = g.data_offset();
  Pass1 r;
  r.tensor_hash.resize(tensors.size());
  Hasher128 file_hasher, tensor_hasher;
  GapCollector gaps;
  size_t k = 0;  // next tensor in offset order
  for (uint64_t pos = 0; pos < in.size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), in.size() - pos));
    in.read_exact(pos, buf.data(), n);
    file_hasher.update(buf.data(), n);
    uint64_t end = pos + n;
    for (uint64_t p = std::max(pos, base); p < end;) {
      const uint8_t* at = buf.data() + (p - pos);
      if (k < order.size() && p >= base + tensors[order[k]].offset) {
        const GgufTensorInfo& t = tensors[order[k]];
        uint64_t t_end = base + t.offset + t.size;
        uint64_t e = std::min(end, t_end);
        tensor_hasher.update(at, e - p);
        p = e;
        if (p == t_end) {
          r.tensor_hash[order[k]] = tensor_hasher.digest();
          tensor_hasher.reset();
          ++k;
        }
      } else {
        uint64_t e = k < order.size() ? std::min(end, base + tensors[order[k]].offset) : end;
        gaps.scan(at, p - base, e - p, k);
        p = e;
      }
    }
    pos = end;
    progress.add(n);
  }
  // Tensors of zero bytes never see a byte; everything else must have been completed.
  for (; k < order.size() && tensors[order[k]].size == 0; ++k) {
    r.tensor_hash[order[k]] = xxh3_128(nullptr, 0);
  }
  if (k != order.size()) {
    throw Error(ErrorCode::kIoRead, g.name() + ": file ended before tensor " +
                                        tensors[order[k]].name + " (it changed while splitting?)");
  }
  r.file_hash = file_hasher.digest();
  r.gaps = gaps.finish();
  return r;
}

// Copies [offset, offset+size) of `in` to `out`, feeding `hasher`.
void copy_range(const InputFd& in, uint64_t offset, uint64_t size, OutputFile& out,
                Hasher128& hasher, ChunkBuffer& buf, Progress& progress) {
  while (size > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size));
    in.read_exact(offset, buf.data(), n);
    hasher.update(buf.data(), n);
    out.write(buf.data(), n);
    offset += n;
    size -= n;
    progress.add(n);
  }
}

struct Plan {
  ManifestFragment fragment;
  std::vector<size_t> tensors;  // indices into GgufFile::tensors()
};

std::vector<Plan> plan_fragments(const GgufFile& g, const ModelParams& params) {
  std::vector<Plan> plans(params.n_layers + 3);
  plans[0].fragment = {"gguf_header.lwf", FragmentRole::GgufHeader, -1, 0, {}, {}};
  plans[1].fragment = {"embedding.lwf", FragmentRole::Embedding, -1, 0, {}, {}};
  for (uint32_t l = 0; l < params.n_layers; ++l) {
    plans[2 + l].fragment = {"blk." + std::to_string(l) + ".lwf", FragmentRole::Layer,
                             static_cast<int32_t>(l), 0, {}, {}};
  }
  plans.back().fragment = {"output.lwf", FragmentRole::Output, -1, 0, {}, {}};
  const auto& tensors = g.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string& name = tensors[i].name;
    int layer = tensor_layer(name);
    Plan* plan = nullptr;
    if (layer >= 0 && static_cast<uint32_t>(layer) < params.n_layers) {
      plan = &plans[2 + layer];
    } else if (name == "token_embd.weight") {
      plan = &plans[1];
    } else if (name == "output_norm.weight" || name == "output.weight") {
      plan = &plans.back();
    }
    if (plan == nullptr) {
      throw Error(ErrorCode::kArchTensor,
                  g.name() + ": tensor " + name + " belongs to no fragment (layer " +
                      std::to_string(layer) + " of " + std::to_string(params.n_layers) + ")");
    }
    plan->tensors.push_back(i);
  }
  return plans;
}

// Writes one fragment file into `dir` and completes plan.fragment (size, xxh3, tensors).
uint64_t write_fragment(const GgufFile& g, const InputFd& in, const Pass1& pass1, Plan& plan,
                        const std::filesystem::path& dir, ChunkBuffer& buf, Progress& progress) {
  ManifestFragment& f = plan.fragment;
  FragmentPrefix prefix;
  prefix.header.role = static_cast<uint32_t>(f.role);
  prefix.header.layer = f.layer;
  for (size_t index : plan.tensors) {
    const GgufTensorInfo& t = g.tensors()[index];
    FragmentTensorEntry e{};
    e.type = static_cast<uint32_t>(t.type);
    e.n_dims = static_cast<uint32_t>(t.ne.size());
    for (size_t d = 0; d < 4; ++d) e.ne[d] = d < t.ne.size() ? t.ne[d] : 1;
    e.size = t.size;
    e.gguf_offset = t.offset;
    e.hash_high = pass1.tensor_hash[index].high;
    e.hash_low = pass1.tensor_hash[index].low;
    prefix.entries.push_back(e);
    prefix.names.push_back(t.name);
  }
  fragment_layout(&prefix);
  if (f.role == FragmentRole::GgufHeader) prefix.header.file_size = 64 + g.data_offset();
  std::vector<uint8_t> head = fragment_encode_prefix(prefix);

  OutputFile out(dir / f.file);
  Hasher128 hasher;
  hasher.update(head.data(), head.size());
  out.write(head.data(), head.size());
  if (f.role == FragmentRole::GgufHeader) {
    copy_range(in, 0, g.data_offset(), out, hasher, buf, progress);
  }
  static const uint8_t kZeros[kFragmentAlignment] = {};
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const FragmentTensorEntry& e = prefix.entries[i];
    uint64_t pad = e.offset - out.offset();
    LW_CHECK(pad < kFragmentAlignment, "layout padding " + std::to_string(pad));
    hasher.update(kZeros, pad);
    out.write_zeros(pad);
    copy_range(in, g.data_offset() + e.gguf_offset, e.size, out, hasher, buf, progress);
    const GgufTensorInfo& t = g.tensors()[plan.tensors[i]];
    f.tensors.push_back(ManifestTensor{t.name, t.type, t.ne, e.offset, e.size, e.gguf_offset,
                                       Hash128{e.hash_high, e.hash_low}});
  }
  LW_CHECK(out.offset() == prefix.header.file_size,
           f.file + ": wrote " + std::to_string(out.offset()) + " of " +
               std::to_string(prefix.header.file_size));
  out.close();
  f.size = prefix.header.file_size;
  f.xxh3 = hasher.digest();
  return f.size;
}

bool dir_is_empty(const std::filesystem::path& dir) {
  return std::filesystem::directory_iterator(dir) == std::filesystem::directory_iterator();
}

// Refuses an output that exists and is not an empty folder (unless force, for folders).
void check_output(const std::filesystem::path& out, bool force) {
  std::error_code ec;
  auto st = std::filesystem::symlink_status(out, ec);
  if (!std::filesystem::exists(st)) return;
  if (!std::filesystem::is_directory(st)) {
    throw Error(ErrorCode::kFragDirNotEmpty, out.string() + ": exists and is not a folder");
  }
  if (!force && !dir_is_empty(out)) {
    throw Error(ErrorCode::kFragDirNotEmpty,
                out.string() + ": folder exists and is not empty (use --force to replace it)");
  }
}

// Moves the finished `tmp` folder to `out`; an old `out` is removed only afterwards.
void install(const std::filesystem::path& tmp, const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (dir_is_empty(out)) {
      fs::remove(out, ec);
    } else {
      old = store_detail::temp_sibling(out, "old");
      fs::rename(out, old, ec);
      if (ec) {
        throw Error(ErrorCode::kIoRename, out.string() + ": cannot move aside to " + old.string() +
                                              ": " + ec.message());
      }
    }
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, out, ignored);
    throw Error(ErrorCode::kIoRename,
                tmp.string() + ": cannot rename to " + out.string() + ": " + ec.message());
  }
  store_detail::sync_dir(out.has_parent_path() ? out.parent_path() : fs::path("."));
  if (!old.empty()) store_detail::remove_quietly(old);
}

}  // namespace

SplitResult store_split(const std::filesystem::path& gguf, const std::filesystem::path& out_dir,
                        const SplitOptions& options) {
  namespace fs = std::filesystem;
  auto start = std::chrono::steady_clock::now();
  const fs::path out = store_detail::strip_trailing_slash(out_dir);
  check_output(out, options.force);

  GgufFile g = GgufFile::open(gguf);
  SplitResult result;
  Manifest& m = result.manifest;
  m.params = detect_architecture(g.metadata(), g.tensor_descs());
  std::vector<Plan> plans = plan_fragments(g, m.params);

  InputFd in(gguf);
  if (in.size() != g.file_size()) {
    throw Error(ErrorCode::kIoRead, gguf.string() + ": size changed while opening (" +
                                        std::to_string(g.file_size()) + " -> " +
                                        std::to_string(in.size()) + " bytes)");
  }
  uint64_t tensor_bytes = 0;
  for (const GgufTensorInfo& t : g.tensors()) tensor_bytes += t.size;
  Progress progress{options.progress, 0, in.size() + g.data_offset() + tensor_bytes};

  fs::path tmp = store_detail::temp_sibling(out, "partial");
  store_detail::remove_quietly(tmp);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  if (!fs::create_directory(tmp, ec)) {
    throw Error(ErrorCode::kIoOpen,
                tmp.string() + ": cannot create folder: " + (ec ? ec.message() : "exists"));
  }
  auto log = logger("fragments");
  try {
    ChunkBuffer buf(in.size());
    Pass1 pass1 = hash_source(g, in, buf, progress);
    for (Plan& plan : plans) {
      result.bytes_written += write_fragment(g, in, pass1, plan, tmp, buf, progress);
      log->debug("fragment {}: {} tensors, {} bytes, xxh3 {}", plan.fragment.file,
                 plan.fragment.tensors.size(), plan.fragment.size, plan.fragment.xxh3.hex());
      m.fragments.push_back(std::move(plan.fragment));
    }
    m.metadata = g.metadata();
    std::sort(m.metadata.begin(), m.metadata.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    m.gguf_version = g.version();
    m.gguf_alignment = g.alignment();
    m.gguf_size = g.file_size();
    m.gguf_data_offset = g.data_offset();
    m.gguf_xxh3 = pass1.file_hash;
    m.gguf_gaps = std::move(pass1.gaps);
    m.digest = manifest_digest(m);
    // The manifest goes last: its presence means the split finished.
    std::string text = manifest_to_json(m);
    write_text_file(tmp / kManifestFile, text);
    result.bytes_written += text.size();
    store_detail::sync_dir(tmp);
    install(tmp, out);
  } catch (...) {
    store_detail::remove_quietly(tmp);
    throw;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log->debug("split {} -> {}: {} fragments, {} bytes, digest {}", gguf.string(), out.string(),
            m.fragments.size(), result.bytes_written, m.digest.hex());
  return result;
}

}  // namespace lw
