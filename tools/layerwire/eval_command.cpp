// `layerwire eval`: the whole model in one process, one prefill of all tokens; writes the
// logits of every position (row-major f32, n_tokens x vocab, little-endian) and prints the
// argmax of each position.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/file_util.h"
#include "engine/model.h"
#include "fragments/store.h"
#include "kernels/backend.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {
namespace {

class EvalCommand : public Command {
 public:
  explicit EvalCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "eval",
        "Run the whole model in one process on the given token ids (one prefill of all of "
        "them) and write the logits of every position: row-major f32, n_tokens x vocab. Prints "
        "the argmax token and its logit per position. Use it to compare layerwire against "
        "other engines on the same token ids.");
    app->add_option("--fragments", dir_, "fragment store folder (made by fragment_tool split)")
        ->required()
        ->check(CLI::ExistingDirectory);
    app->add_option("--tokens", tokens_text_, "comma-separated token ids, e.g. 1,15,27")
        ->required();
    app->add_option("--out", out_, "write the logits here (n_tokens x vocab f32)");
    add_backend_options(*app, backend_);
    app->footer(
        "Examples:\n"
        "  layerwire eval --fragments tiny.store --tokens 1,15,27\n"
        "  layerwire eval --fragments mistral.store --tokens 1,1014,1032 --out logits.f32 "
        "--threads 8\n");
  }

  int run() override {
    const std::vector<int32_t> tokens = parse_token_list(tokens_text_);
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    std::unique_ptr<Backend> backend =
        make_backend(backend_.name, backend_.device, backend_.threads);
    FragmentStore store = FragmentStore::open(dir_);
    const ModelParams& p = store.manifest().params;
    ModelOptions options;
    options.stack.max_batch_tokens = static_cast<int32_t>(tokens.size());
    options.stack.kv.budget_tokens = static_cast<int64_t>(tokens.size());
    Model model(store, *backend, options);
    model.head().check_tokens(tokens);
    const auto t1 = Clock::now();
    const std::vector<float> logits = model.eval(tokens);
    const auto t2 = Clock::now();
    const double load_s = std::chrono::duration<double>(t1 - t0).count();
    const double eval_s = std::chrono::duration<double>(t2 - t1).count();

    const size_t vocab = p.vocab_size;
    std::printf("model %s: %u layers, dim %u, vocab %u; backend %s\n", p.preset.c_str(), p.n_layers,
                p.dim, p.vocab_size, backend->description().c_str());
    std::printf("loaded in %.2f s; evaluated %zu tokens in %.3f s (%.1f tokens/s)\n", load_s,
                tokens.size(), eval_s, tokens.size() / std::max(eval_s, 1e-9));
    std::printf("%8s %8s %8s %12s\n", "position", "token", "argmax", "logit");
    for (size_t t = 0; t < tokens.size(); ++t) {
      const float* row = logits.data() + t * vocab;
      size_t best = 0;
      for (size_t i = 1; i < vocab; ++i)
        if (row[i] > row[best]) best = i;
      std::printf("%8zu %8d %8zu %12.5f\n", t, tokens[t], best, row[best]);
    }
    if (!out_.empty()) {
      OutputFile out(out_);
      out.write(logits.data(), logits.size() * sizeof(float));
      out.close();
      std::printf("wrote %zu x %zu f32 logits to %s\n", tokens.size(), vocab, out_.c_str());
    }
    return kExitOk;
  }

 private:
  std::string dir_;
  std::string tokens_text_;
  std::string out_;
  BackendOptions backend_;
};

}  // namespace

std::unique_ptr<Command> make_eval(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<EvalCommand>(parent);
}

}  // namespace lw::cli
