// `layerwire bench`: llama-bench style speed of the layer engine on a fragment store — pp N
// (one prefill of N tokens) and tg N (N decode steps of one token) in tokens/s, median of
// --reps runs after a warm-up — plus, in the same run, the machine's memory bandwidth from a
// copy loop and the weight bandwidth decode achieves (weight bytes of the layers run per
// token / time per token) as a fraction of it. The head (embedding, output matrix) is not
// part of the measurement: hidden states are random, so --layers can time any sub-range.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <span>

#include "common/error.h"
#include "engine/layer_stack.h"
#include "fragments/store.h"
#include "kernels/backend.h"
#include "tools/layerwire/commands.h"
#include "tools/layerwire/membw.h"

namespace lw::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

struct TestResult {
  std::string name;  // "pp512", "tg128"
  int n_tokens = 0;
  std::vector<double> seconds;  // per repetition
  double tokens_per_s() const { return n_tokens / median(seconds); }
};

class BenchCommand : public Command {
 public:
  explicit BenchCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "bench",
        "Measure the layer engine: pp N = one prefill of N tokens, tg N = N decode steps of "
        "one token each (tokens/s, median of --reps runs after a warm-up), the machine's "
        "memory bandwidth (multi-threaded memcpy, read + write bytes, best of 5), and the "
        "weight bandwidth decode achieves against it. Hidden states are random and the head "
        "is not run, so --layers can time a sub-range of a model too big or slow to run "
        "whole.");
    auto* fragments =
        app->add_option("--fragments", dir_, "fragment store folder (made by fragment_tool split)")
            ->check(CLI::ExistingDirectory);
    // --config: the same pp / tg tests across a cluster (cluster_bench_command.cpp).
    app->add_option("--config", config_,
                    "client config: bench the cluster it describes instead of one process "
                    "(per-hop latency, bytes per token)")
        ->check(CLI::ExistingFile)
        ->excludes(fragments);
    app->add_option("-p,--prompt", prompt_, "prefill test size in tokens (0 skips it)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_option("-n,--gen", gen_, "decode test size in tokens (0 skips it)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_option("--batch-sessions", batch_sessions_,
                    "also time batched decode: this many sessions decode --gen steps together, "
                    "one token each per forward call (aggregate tokens/s; 0 skips it)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_option("--layers", layers_, "layer range A-B (inclusive) or N; default all");
    app->add_option("--reps", reps_, "timed repetitions per test (median reported)")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app->add_option("--bw-mib", bw_mib_, "size of each bandwidth-test buffer in MiB (0 skips)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_flag("--json", json_, "print one JSON object instead of the table");
    add_backend_options(*app, backend_);
    app->footer(
        "Examples:\n"
        "  layerwire bench --fragments tiny.store\n"
        "  fragment_tool synth --preset mistral-7b --layers 2 -o m2.gguf && fragment_tool "
        "split m2.gguf -o m2.store\n"
        "  layerwire bench --fragments m2.store -p 512 -n 128 --json\n"
        "  layerwire bench --fragments mistral.store --layers 0-1 -p 64 -n 32\n"
        "  layerwire bench --config config/demo-cluster.json -p 64 -n 32   # across servers\n");
  }

  int run() override {
    if (!config_.empty()) {
      return run_cluster_bench(ClusterBenchOptions{config_, prompt_, gen_, reps_, json_});
    }
    if (dir_.empty()) {
      throw Error(ErrorCode::kCliArgument, "bench: give --fragments DIR or --config FILE");
    }
    std::unique_ptr<Backend> backend =
        make_backend(backend_.name, backend_.device, backend_.threads);
    FragmentStore store = FragmentStore::open(dir_);
    const ModelParams& p = store.manifest().params;
    const LayerRange range = layers_.empty()
                                 ? LayerRange{0, static_cast<int>(p.n_layers)}
                                 : LayerRange::parse(layers_, static_cast<int>(p.n_layers));
    LayerStackOptions options;
    options.max_batch_tokens = std::max({prompt_, 1, batch_sessions_});
    options.kv.budget_tokens =
        std::max(prompt_, gen_) + options.kv.block_size +
        static_cast<int64_t>(batch_sessions_) * (gen_ + 2 * options.kv.block_size);
    const auto load0 = Clock::now();
    LayerStack stack(store, range, *backend, options);
    const double load_s = seconds_since(load0);

    std::vector<TestResult> results;
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    SessionId next_session = 1;
    const size_t dim = p.dim;
    if (prompt_ > 0) {
      std::vector<float> in(prompt_ * dim), out(in.size());
      for (float& x : in) x = dist(rng);
      TestResult r{"pp" + std::to_string(prompt_), prompt_, {}};
      for (int rep = -1; rep < reps_; ++rep) {  // rep -1 is the warm-up
        const SessionId s = next_session++;
        stack.kv().open(s);
        const BatchEntry e{s, prompt_, 0};
        const auto t0 = Clock::now();
        stack.forward({&e, 1}, in, out);
        const double t = seconds_since(t0);
        stack.kv().close(s);
        if (rep >= 0) r.seconds.push_back(t);
      }
      results.push_back(r);
    }
    // Decode inputs are drawn before the clock starts: drawing 32 sessions' hidden states
    // (131k normal samples) inside the timed loop cost ~2.5 ms per step.
    if (gen_ > 0) {
      std::vector<float> in(static_cast<size_t>(gen_) * dim), out(dim);
      TestResult r{"tg" + std::to_string(gen_), gen_, {}};
      for (int rep = -1; rep < reps_; ++rep) {
        const int steps = rep < 0 ? std::min(gen_, 16) : gen_;
        for (float& x : in) x = dist(rng);
        const SessionId s = next_session++;
        stack.kv().open(s);
        const auto t0 = Clock::now();
        for (int i = 0; i < steps; ++i) {
          const BatchEntry e{s, 1, i};
          stack.forward({&e, 1}, std::span<const float>(in).subspan(i * dim, dim), out);
        }
        const double t = seconds_since(t0);
        stack.kv().close(s);
        if (rep >= 0) r.seconds.push_back(t);
      }
      results.push_back(r);
    }
    if (batch_sessions_ > 0 && gen_ > 0) {
      // N sessions, each decoding gen_ tokens; every forward call carries one token of each.
      const int n = batch_sessions_;
      const size_t step_floats = static_cast<size_t>(n) * dim;
      std::vector<float> in(static_cast<size_t>(gen_) * step_floats), out(step_floats);
      TestResult r{"tg" + std::to_string(gen_) + "x" + std::to_string(n), gen_ * n, {}};
      for (int rep = -1; rep < reps_; ++rep) {
        const int steps = rep < 0 ? std::min(gen_, 16) : gen_;
        for (float& x : in) x = dist(rng);
        std::vector<BatchEntry> batch(static_cast<size_t>(n));
        for (int s = 0; s < n; ++s) {
          batch[s].session = next_session++;
          batch[s].n_tokens = 1;
          stack.kv().open(batch[s].session);
        }
        const auto t0 = Clock::now();
        for (int i = 0; i < steps; ++i) {
          for (BatchEntry& e : batch) e.start = i;
          stack.forward(batch, std::span<const float>(in).subspan(i * step_floats, step_floats),
                        out);
        }
        const double t = seconds_since(t0);
        for (const BatchEntry& e : batch) stack.kv().close(e.session);
        if (rep >= 0) r.seconds.push_back(t);
      }
      results.push_back(r);
    }
    CopyBandwidth bw;
    if (bw_mib_ > 0) {
      ThreadPool pool(backend_.threads);
      bw = measure_copy_bandwidth(pool, static_cast<uint64_t>(bw_mib_) << 20, 5);
    }
    report(p, range, stack, *backend, load_s, results, bw);
    return kExitOk;
  }

 private:
  void report(const ModelParams& p, LayerRange range, LayerStack& stack, Backend& backend,
              double load_s, const std::vector<TestResult>& results,
              const CopyBandwidth& bw) const {
    const double weight_bytes = static_cast<double>(stack.weight_bytes());
    double decode_bw = 0;
    for (const TestResult& r : results) {
      if (r.name.rfind("tg", 0) == 0 && r.name.find('x') == std::string::npos)
        decode_bw = weight_bytes * r.tokens_per_s();
    }
    const double fraction = bw.bytes_per_s > 0 ? decode_bw / bw.bytes_per_s : 0;
    if (json_) {
      nlohmann::json j;
      j["model"] = {{"preset", p.preset},         {"dim", p.dim},
                    {"n_layers", p.n_layers},     {"n_heads", p.n_heads},
                    {"n_kv_heads", p.n_kv_heads}, {"head_dim", p.head_dim},
                    {"ffn_dim", p.ffn_dim},       {"vocab_size", p.vocab_size}};
      j["layers"] = range.to_string();
      j["layers_run"] = range.end - range.begin;
      j["weight_bytes"] = stack.weight_bytes();
      j["backend"] = backend.description();
      j["load_seconds"] = load_s;
      j["tests"] = nlohmann::json::array();
      for (const TestResult& r : results) {
        j["tests"].push_back({{"test", r.name},
                              {"n_tokens", r.n_tokens},
                              {"tokens_per_s", r.tokens_per_s()},
                              {"seconds", r.seconds}});
      }
      j["memory_bandwidth"] = {{"bytes_per_s", bw.bytes_per_s},
                               {"buffer_bytes", bw.buffer_bytes},
                               {"threads", bw.threads},
                               {"method", "memcpy, read+write bytes, best of 5"}};
      j["decode_weight_bytes_per_s"] = decode_bw;
      j["decode_bandwidth_fraction"] = fraction;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf(
        "model %s (dim %u, heads %u/%u, head_dim %u, ffn %u): layers %s of %u, "
        "%.1f MiB of weights; backend %s; loaded in %.2f s\n",
        p.preset.c_str(), p.dim, p.n_heads, p.n_kv_heads, p.head_dim, p.ffn_dim,
        range.to_string().c_str(), p.n_layers, weight_bytes / 1048576.0,
        backend.description().c_str(), load_s);
    std::printf("| %-8s | %12s | %12s | %5s |\n", "test", "tokens/s", "ms/token", "reps");
    std::printf("|----------|--------------|--------------|-------|\n");
    for (const TestResult& r : results) {
      std::printf("| %-8s | %12.2f | %12.3f | %5zu |\n", r.name.c_str(), r.tokens_per_s(),
                  1000.0 / r.tokens_per_s(), r.seconds.size());
    }
    if (bw.bytes_per_s > 0) {
      std::printf(
          "memory bandwidth: %.2f GB/s (memcpy of 2 x %.0f MiB on %u threads, read + "
          "write bytes, best of %d)\n",
          bw.bytes_per_s / 1e9, bw.buffer_bytes / 1048576.0, bw.threads, bw.reps);
    }
    if (decode_bw > 0) {
      std::printf("decode weight bandwidth: %.2f GB/s (%.1f MiB per token)", decode_bw / 1e9,
                  weight_bytes / 1048576.0);
      if (fraction > 0) std::printf(" = %.1f%% of measured memory bandwidth", 100 * fraction);
      std::printf("\n");
    }
  }

  std::string dir_;
  std::string config_;  // --config: cluster bench
  int prompt_ = 512;
  int gen_ = 128;
  std::string layers_;
  int reps_ = 3;
  int batch_sessions_ = 0;
  int bw_mib_ = 512;
  bool json_ = false;
  BackendOptions backend_;
};

}  // namespace

std::unique_ptr<Command> make_bench(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<BenchCommand>(parent);
}

}  // namespace lw::cli
