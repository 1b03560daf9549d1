// fragment_tool split / join: GGUF -> fragment store and back.
#include <cstdio>

#include "fragments/store.h"
#include "tools/fragment_tool/commands.h"
#include "tools/fragment_tool/progress.h"

namespace lw::tool {
namespace {

class SplitCommand : public Command {
 public:
  SplitCommand(CLI::App& parent, const GlobalOptions& global) : global_(global) {
    app = parent.add_subcommand("split", "Split a GGUF model into a fragment store");
    app->add_option("model", model_, "the GGUF file (version 2 or 3, llama architecture)")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("-o,--output", out_, "the store folder to create")->required();
    app->add_flag("-f,--force", force_,
                  "replace a non-empty output folder (the old one is removed only after the "
                  "new store is complete)");
    app->description(
        "Split a GGUF model into a fragment store: gguf_header.lwf, embedding.lwf, blk.N.lwf "
        "per layer and output.lwf, each tensor's bytes unchanged and 256-byte aligned, plus "
        "manifest.json (hyper-parameters, preset, all GGUF metadata, per-file and per-tensor "
        "xxh3-128, digest). Writes into OUT.partial-<pid> and renames it to OUT at the end, so "
        "an interrupted split never leaves a store that looks complete.\n\n"
        "Examples:\n"
        "  fragment_tool split mistral-7b.Q4_K_M.gguf -o /models/mistral-7b.store\n"
        "  fragment_tool split model.gguf -o store --force   # replace an existing store");
  }

  int run() override {
    ProgressBar bar("split", !global_.no_progress);
    SplitOptions options;
    options.force = force_;
    options.progress = bar.fn();
    SplitResult r = store_split(model_, out_, options);
    bar.finish();
    const Manifest& m = r.manifest;
    std::printf("split %s -> %s: %zu files, %s in %.2f s (%s), preset %s, %u layers\n",
                model_.c_str(), out_.c_str(), m.fragments.size() + 1,
                format_bytes(static_cast<double>(r.bytes_written)).c_str(), r.seconds,
                format_rate(static_cast<double>(r.bytes_written), r.seconds).c_str(),
                m.params.preset.c_str(), m.params.n_layers);
    std::printf("digest %s\n", m.digest.hex().c_str());
    return kExitOk;
  }

 private:
  const GlobalOptions& global_;
  std::string model_, out_;
  bool force_ = false;
};

class JoinCommand : public Command {
 public:
  JoinCommand(CLI::App& parent, const GlobalOptions& global) : global_(global) {
    app = parent.add_subcommand("join", "Rebuild the original GGUF from a fragment store");
    app->add_option("store", dir_, "the store folder")->required()->check(CLI::ExistingDirectory);
    app->add_option("-o,--output", out_, "the GGUF file to write")->required();
    app->add_flag("-f,--force", force_, "replace an existing output file");
    app->description(
        "Rebuild the original GGUF byte for byte: the header bytes kept in gguf_header.lwf, "
        "every tensor at its original offset, zero padding. Each tensor's xxh3-128 is checked "
        "as it is copied and the whole result against the original file's xxh3-128; on any "
        "mismatch nothing is written. Writes OUT.partial-<pid>, then renames it.\n\n"
        "Examples:\n"
        "  fragment_tool join /models/mistral-7b.store -o mistral-7b.gguf\n"
        "  fragment_tool join store -o model.gguf --force");
  }

  int run() override {
    check_overwrite(out_, force_);
    ProgressBar bar("join", !global_.no_progress);
    auto start = std::chrono::steady_clock::now();
    store_join(dir_, out_, bar.fn());
    bar.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::error_code ec;
    double size = static_cast<double>(std::filesystem::file_size(out_, ec));
    std::printf("join %s -> %s: %s in %.2f s (%s), every tensor and the whole file verified\n",
                dir_.c_str(), out_.c_str(), format_bytes(size).c_str(), seconds,
                format_rate(size, seconds).c_str());
    return kExitOk;
  }

 private:
  const GlobalOptions& global_;
  std::string dir_, out_;
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> make_split(CLI::App& parent, const GlobalOptions& global) {
  return std::make_unique<SplitCommand>(parent, global);
}

std::unique_ptr<Command> make_join(CLI::App& parent, const GlobalOptions& global) {
  return std::make_unique<JoinCommand>(parent, global);
}

}  // namespace lw::tool
