// Benchmark of the RPC path (docs/BENCHMARKS.md "Layer server (RPC)"), not a timed test: it
// is DISABLED_ and asserts nothing about speed. Run it with
//   build/tests/lw_server_tests --gtest_also_run_disabled_tests --gtest_filter='*RpcBench*'
// (LW_BENCH_DECODE_ITERS, LW_BENCH_PREFILL_ITERS override the iteration counts;
// LW_BENCH_DIM=5120 gives magistral-small's hidden size).
// A loopback layer_server with compute "noop" over a synthesized store of hidden size 4096
// (mistral-7b's) by default, one layer. Inputs are hidden states produced by that store's layer
// (engine LayerStack on random N(0,1) input), so compression ratios are those of model
// outputs rather than of raw noise. Prints one table row per case.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "fragments/synth.h"
#include "tests/unit/server/server_test_util.h"

namespace lw::test {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

struct Case {
  const char* name;
  uint32_t tokens;
  WireDtype dtype;
  CompressionMode mode;  // request encoding; replies follow the client's handshake
  bool compressed_replies;
};

TEST(RpcBench, DISABLED_LoopbackRoundTrip) {
  const uint32_t kDim = static_cast<uint32_t>(env_int("LW_BENCH_DIM", 4096));
  ASSERT_TRUE(kDim % 256 == 0 && kDim >= 256) << "LW_BENCH_DIM must be a multiple of 256";
  TempDir dir;
  SynthOptions synth;
  synth.shape = SynthShape{.dim = kDim,
                           .n_layers = 1,
                           .n_heads = 32,
                           .n_kv_heads = 8,
                           .head_dim = 128,
                           .ffn_dim = 1024,
                           .vocab_size = 512};
  synth.quant = "q8_0";
  synth_model(synth, dir / "m.gguf");
  store_split(dir / "m.gguf", dir / "store", SplitOptions{});

  ServerConfig config = server_test_config(dir / "store");
  config.compute = "noop";
  config.compression = "shuffle-zstd";  // used only for the client that lists it
  config.max_tokens_per_call = 2048;
  config.max_message_bytes = 256ull << 20;
  config.kv_budget_tokens = 1 << 20;
  config.session_ttl_seconds = 0;

  // Hidden states of the synthesized layer, 2048 tokens (the prefill input; the decode and
  // 128-token cases take its first rows).
  std::vector<float> hidden;
  {
    ServerConfig local_config = config;
    local_config.threads = 0;
    local_config.kv_budget_tokens = 2048;
    LocalStack local(dir / "store", local_config);
    for (uint32_t at = 0; at < 2048; at += 128) {
      const std::vector<float> out =
          local.forward(1, static_cast<int32_t>(at), random_hidden(size_t{128} * kDim, at));
      hidden.insert(hidden.end(), out.begin(), out.end());
    }
  }

  InProcessServer server(config);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  HandshakeArgs args;
  args.digest = manifest_load(dir / "store").digest.hex();
  TestClient raw_client(io, server.ports().rpc);
  args.want_compression = false;
  ASSERT_FALSE(raw_client.handshake(args).has_value());
  TestClient z_client(io, server.ports().rpc);
  args.want_compression = true;
  ASSERT_FALSE(z_client.handshake(args).has_value());

  const int decode_iters = env_int("LW_BENCH_DECODE_ITERS", 2000);
  const int prefill_iters = env_int("LW_BENCH_PREFILL_ITERS", 50);
  const Case cases[] = {
      {"decode 1 x D f32 raw", 1, WireDtype::F32, CompressionMode::Off, false},
      {"decode 1 x D f16 raw", 1, WireDtype::F16, CompressionMode::Off, false},
      {"decode 1 x D f16 shuffle+zstd", 1, WireDtype::F16, CompressionMode::ShuffleZstd, true},
      {"prefill 128 x D f32 raw", 128, WireDtype::F32, CompressionMode::Off, false},
      {"prefill 128 x D f16 raw", 128, WireDtype::F16, CompressionMode::Off, false},
      {"prefill 128 x D f16 shuffle+zstd", 128, WireDtype::F16, CompressionMode::ShuffleZstd,
       true},
      {"prefill 2048 x D f16 raw", 2048, WireDtype::F16, CompressionMode::Off, false},
      {"prefill 2048 x D f16 shuffle+zstd", 2048, WireDtype::F16, CompressionMode::ShuffleZstd,
       true},
  };
  std::printf("\nhidden size D = %u\n", kDim);
  std::printf(
      "\n| case | calls | median RTT | p99 RTT | server median | wire/raw (req) | "
      "MB/s (raw, both ways) |\n|---|---|---|---|---|---|---|\n");
  for (const Case& c : cases) {
    TestClient& client = c.compressed_replies ? z_client : raw_client;
    const int iters = c.tokens == 1 ? decode_iters : c.tokens >= 2048 ? 10 : prefill_iters;
    const std::vector<float> in(hidden.begin(), hidden.begin() + size_t{c.tokens} * kDim);
    EncodeOptions o;
    o.dtype = c.dtype;
    o.mode = c.mode;
    const uint64_t shape[2] = {c.tokens, kDim};
    const auto session = std::get<size_t>(client.open_session(0));
    std::vector<double> rtt, server_ns;
    double wire_ratio = 0;
    uint32_t pos = 0;
    for (int i = 0; i < iters + 5; ++i) {
      // The client's encode is part of the round trip, as for a real client.
      const auto t0 = std::chrono::steady_clock::now();
      const WireTensor request = encode_tensor(in.data(), shape, o);
      auto r = client.forward_tensor(session, pos, request, c.dtype);
      const auto t1 = std::chrono::steady_clock::now();
      ASSERT_TRUE(std::holds_alternative<ForwardReply>(r)) << std::get<CallError>(r);
      pos += c.tokens;
      if (i < 5) continue;  // warm-up
      rtt.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      server_ns.push_back(static_cast<double>(std::get<ForwardReply>(r).total_ns) / 1e3);
      wire_ratio = static_cast<double>(request.data.size()) / static_cast<double>(request.raw_size);
    }
    ASSERT_FALSE(client.close_session(session).has_value());
    std::sort(rtt.begin(), rtt.end());
    std::sort(server_ns.begin(), server_ns.end());
    const double median = rtt[rtt.size() / 2];
    const double p99 = rtt[std::min(rtt.size() - 1, rtt.size() * 99 / 100)];
    const double raw_mb = 2.0 * c.tokens * kDim * wire_dtype_size(c.dtype) / 1e6;
    std::printf("| %s | %zu | %.0f us | %.0f us | %.0f us | %.3f | %.0f |\n", c.name, rtt.size(),
                median, p99, server_ns[server_ns.size() / 2], wire_ratio, raw_mb / (median / 1e6));
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace lw::test
