// store_verify: checks the selected fragment files against the manifest (existence, size,
// header and directory, then one sequential pass per file hashing the whole file and each
// tensor), with `jobs` worker threads taking files from a shared queue. Every problem found
// goes in the report; nothing is skipped silently.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "fragments/store.h"
#include "fragments/store_internal.h"

namespace lw {
namespace {

using store_detail::ChunkBuffer;
using store_detail::InputFd;

class SharedProgress {
 public:
  SharedProgress(const ProgressFn& fn, uint64_t total) : fn_(fn), total_(total) {}
  void add(uint64_t n) {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    done_ += n;
    fn_(done_, total_);
  }

 private:
  const ProgressFn& fn_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::mutex mu_;
};

struct FileResult {
  std::vector<VerifyProblem> problems;
  uint64_t bytes = 0;  // bytes read and hashed
};

// One sequential pass: the whole-file hash and each tensor's hash (manifest offsets).
void hash_file(const InputFd& in, const ManifestFragment& f, ChunkBuffer& buf,
               SharedProgress& progress, FileResult& r) {
  const uint64_t limit = std::min(in.size(), f.size);
  const size_t nt = f.tensors.size();
  std::vector<Hash128> got(nt);
  Hasher128 file_hasher, tensor_hasher;
  size_t k = 0;
  uint64_t pos = 0;
  while (pos < limit) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - pos));
    size_t n = in.read_at(pos, buf.data(), want);
    if (n == 0) break;  // shrank while reading: the size check reports it
    file_hasher.update(buf.data(), n);
    uint64_t end = pos + n;
    for (uint64_t p = pos; p < end && k < nt;) {
      const ManifestTensor& t = f.tensors[k];
      if (p < t.offset) {
        p = std::min(end, t.offset);
        continue;
      }
      uint64_t t_end = t.offset + t.size;
      uint64_t e = std::min(end, t_end);
      tensor_hasher.update(buf.data() + (p - pos), e - p);
      p = e;
      if (p == t_end) {
        got[k++] = tensor_hasher.digest();
        tensor_hasher.reset();
      }
    }
    pos = end;
    r.bytes += n;
    progress.add(n);
  }
  for (size_t i = 0; i < nt; ++i) {
    const ManifestTensor& t = f.tensors[i];
    if (i >= k) {
      r.problems.push_back({ErrorCode::kFragSize, f.file, t.name,
                            "truncated: tensor ends at byte " + std::to_string(t.offset + t.size) +
                                " but the file has " + std::to_string(in.size())});
    } else if (got[i] != t.xxh3) {
      r.problems.push_back({ErrorCode::kFragChecksum, f.file, t.name,
                            "xxh3 mismatch (manifest " + t.xxh3.hex() + ", file " +
                                got[i].hex() + ")"});
    }
  }
  if (pos == f.size && in.size() == f.size) {
    Hash128 h = file_hasher.digest();
    if (h != f.xxh3) {
      bool tensors_ok = std::none_of(r.problems.begin(), r.problems.end(), [](const auto& p) {
        return !p.tensor.empty();
      });
      r.problems.push_back(
          {ErrorCode::kFragChecksum, f.file, "",
           "file xxh3 mismatch (manifest " + f.xxh3.hex() + ", file " + h.hex() + ")" +
               (tensors_ok ? ": the tensors are intact, so header, directory or padding bytes differ"
                           : "")});
    }
  }
}

FileResult verify_file(const std::filesystem::path& dir, const ManifestFragment& f, bool quick,
                       ChunkBuffer& buf, SharedProgress& progress) {
  FileResult r;
  std::filesystem::path path = dir / f.file;
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) {
    r.problems.push_back({ErrorCode::kFragMissing, f.file, "", "missing"});
    progress.add(f.size);
    return r;
  }
  if (!std::filesystem::is_regular_file(st)) {
    r.problems.push_back({ErrorCode::kFragMissing, f.file, "", "not a regular file"});
    progress.add(f.size);
    return r;
  }
  try {
    InputFd in(path);
    if (in.size() != f.size) {
      int64_t delta = static_cast<int64_t>(in.size()) - static_cast<int64_t>(f.size);
      r.problems.push_back({ErrorCode::kFragSize, f.file, "",
                            "size " + std::to_string(in.size()) + ", manifest says " +
                                std::to_string(f.size) + " (" +
                                (delta < 0 ? "truncated by " + std::to_string(-delta)
                                           : "grown by " + std::to_string(delta)) +
                                " bytes)"});
    }
    try {
      FragmentPrefix prefix = store_detail::read_prefix(in, f.file);
      for (auto& [tensor, detail] : store_detail::compare_prefix(prefix, f)) {
        r.problems.push_back({ErrorCode::kFragHeader, f.file, tensor, "header: " + detail});
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kFragHeader) throw;
      r.problems.push_back({ErrorCode::kFragHeader, f.file, "", e.message()});
    }
    if (quick) {
      progress.add(f.size);
    } else {
      hash_file(in, f, buf, progress, r);
      if (r.bytes < f.size) progress.add(f.size - r.bytes);
    }
  } catch (const Error& e) {  // the OS refused to open or read it
    r.problems.push_back({e.code(), f.file, "", e.message()});
  }
  return r;
}

// Entries of the store folder that the manifest does not name.
void find_extra(const std::filesystem::path& dir, const Manifest& m, VerifyReport& report) {
  std::set<std::string> known{kManifestFile};
  for (const ManifestFragment& f : m.fragments) known.insert(f.file);
  std::vector<std::string> extra;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!known.count(name)) extra.push_back(name);
  }
  if (ec) {
    report.problems.push_back({ErrorCode::kIoOpen, dir.string(), "", "cannot list: " + ec.message()});
  }
  std::sort(extra.begin(), extra.end());
  for (const std::string& name : extra) {
    report.problems.push_back({ErrorCode::kFragExtra, name, "", "not in the manifest"});
  }
}

// "<dir>.partial-*" siblings left by an interrupted split into the same place.
void find_partial_siblings(const std::filesystem::path& dir, VerifyReport& report) {
  std::filesystem::path clean = store_detail::strip_trailing_slash(dir);
  std::filesystem::path parent = clean.has_parent_path() ? clean.parent_path() : ".";
  std::string prefix = clean.filename().string() + ".partial-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) {
      report.warnings.push_back({ErrorCode::kFragIncomplete, entry.path().string(), "",
                                 "left by an interrupted split (or one still running); "
                                 "remove it when no split is running"});
    }
  }
}

}  // namespace

VerifyReport store_verify(const std::filesystem::path& dir, const VerifyOptions& options) {
  auto start = std::chrono::steady_clock::now();
  Manifest m = manifest_load(dir);
  std::vector<const ManifestFragment*> files;
  uint64_t total = 0, largest = 0;
  for (const ManifestFragment& f : m.fragments) {
    if (options.selection.includes(f)) {
      files.push_back(&f);
      total += f.size;
      largest = std::max(largest, f.size);
    }
  }
  SharedProgress progress(options.progress, total);
  std::vector<FileResult> results(files.size());
  std::atomic<size_t> next{0};
  std::mutex failure_mu;
  std::exception_ptr failure;  // the first unexpected exception of a worker, rethrown below
  auto worker = [&] {
    try {
      ChunkBuffer buf(largest);
      for (size_t i; (i = next.fetch_add(1)) < files.size();) {
        results[i] = verify_file(dir, *files[i], options.quick, buf, progress);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mu);
      if (!failure) failure = std::current_exception();
      next = files.size();
    }
  };
  unsigned jobs = std::clamp<unsigned>(options.jobs, 1, std::max<size_t>(files.size(), 1));
  if (jobs == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < jobs; ++t) threads.emplace_back(worker);
    for (std::thread& t : threads) t.join();
  }
  if (failure) std::rethrow_exception(failure);

  VerifyReport report;
  for (FileResult& r : results) {
    report.bytes_checked += r.bytes;
    for (VerifyProblem& p : r.problems) report.problems.push_back(std::move(p));
  }
  report.files_checked = files.size();
  if (options.selection.all) {
    find_extra(dir, m, report);
    find_partial_siblings(dir, report);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  logger("fragments")->debug("verify {}: {} files, {} bytes, {} problems, {:.3f} s", dir.string(),
                             report.files_checked, report.bytes_checked, report.problems.size(),
                             report.seconds);
  return report;
}

}  // namespace lw
