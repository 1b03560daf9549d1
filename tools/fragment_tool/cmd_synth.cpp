// fragment_tool synth: write a synthetic llama-architecture GGUF (random weights in real
// encodings, real metadata keys, a small real tokenizer) for tests, demos and benchmarks.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "fragments/synth.h"
#include "tools/fragment_tool/commands.h"
#include "tools/fragment_tool/progress.h"

namespace lw::tool {
namespace {

class SynthCommand : public Command {
 public:
  SynthCommand(CLI::App& parent, const GlobalOptions& global) : global_(global) {
    app = parent.add_subcommand("synth", "Write a synthetic GGUF model with random weights");
    app->add_option("--preset", options_.preset, "model shape")
        ->check(CLI::IsMember({"tiny", "tiny-magistral", "mistral-7b", "magistral-small"}))
        ->capture_default_str();
    app->add_option("--layers", options_.layers, "number of layers (default: the preset's)")
        ->check(CLI::Range(1, 1024));
    app->add_option("--quant", options_.quant, "weight encoding mix")
        ->check(CLI::IsMember({"q4_k_m", "q8_0", "f16", "f32"}))
        ->capture_default_str();
    app->add_option("--seed", options_.seed, "random seed (same seed, same bytes)")
        ->capture_default_str();
    app->add_option("--gguf-version", options_.gguf_version, "GGUF version to write")
        ->check(CLI::IsMember({2u, 3u}))
        ->capture_default_str();
    app->add_option("-o,--output", out_, "the GGUF file to write")->required();
    app->add_flag("-f,--force", force_, "replace an existing output file");
    app->description(
        "Write a valid llama-architecture GGUF with random weights in the real encodings "
        "(q4_k_m: Q4_K with Q6_K on the output matrix and on attn_v/ffn_down of some layers, "
        "F32 norms), the standard metadata keys and a small real tokenizer vocabulary. "
        "Presets: tiny (dim 256, 4 layers), tiny-magistral (head_dim != dim/heads), "
        "mistral-7b and magistral-small (full size: ~4 GB and ~14 GB as q4_k_m).\n\n"
        "Examples:\n"
        "  fragment_tool synth --preset tiny -o tiny.gguf\n"
        "  fragment_tool synth --preset tiny --layers 1 --quant f16 --gguf-version 2 -o t.gguf\n"
        "  fragment_tool synth --preset mistral-7b --quant q4_k_m -o /tmp/mistral-7b.gguf");
  }

  int run() override {
    check_overwrite(out_, force_);
    ProgressBar bar("synth", !global_.no_progress);
    options_.progress = bar.fn();
    auto start = std::chrono::steady_clock::now();
    synth_model(options_, out_);
    bar.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::error_code ec;
    double size = static_cast<double>(std::filesystem::file_size(out_, ec));
    std::printf("synth %s (%s, %s, seed %llu, GGUF v%u) -> %s: %s in %.2f s (%s)\n",
                options_.preset.c_str(),
                options_.layers > 0 ? (std::to_string(options_.layers) + " layers").c_str()
                                    : "preset layers",
                options_.quant.c_str(), static_cast<unsigned long long>(options_.seed),
                options_.gguf_version, out_.c_str(), format_bytes(size).c_str(), seconds,
                format_rate(size, seconds).c_str());
    return kExitOk;
  }

 private:
  const GlobalOptions& global_;
  SynthOptions options_;
  std::string out_;
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> make_synth(CLI::App& parent, const GlobalOptions& global) {
  return std::make_unique<SynthCommand>(parent, global);
}

}  // namespace lw::tool
