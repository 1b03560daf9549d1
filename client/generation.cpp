// The generation loop of RemoteLayerExecutor: prefill the prompt, then sample one token at a
// time (client/sampler.h), feeding each back, streaming its text (StreamDecoder keeps UTF-8
// sequences whole) and timing the phases.
#include <chrono>

#include "client/remote_executor.h"
#include "client/tokenizer.h"
#include "common/error.h"

namespace lw {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

GenerateResult RemoteLayerExecutor::generate(const std::string& prompt,
                                             const SamplingParams& sampling,
                                             const GenerateOptions& options,
                                             const TokenCallback& on_token) {
  const std::vector<int32_t> ids =
      tokenizer().encode(prompt, options.add_bos, options.parse_special);
  const SessionId session = open_session();
  try {
    GenerateResult r = generate_tokens(session, ids, sampling, options, on_token);
    close_session(session);
    return r;
  } catch (...) {
    close_session(session);
    throw;
  }
}

GenerateResult RemoteLayerExecutor::generate_tokens(SessionId session,
                                                    std::span<const int32_t> prompt,
                                                    const SamplingParams& sampling,
                                                    const GenerateOptions& options,
                                                    const TokenCallback& on_token) {
  if (prompt.empty()) {
    throw Error(ErrorCode::kCliArgument, "generate: the prompt has no tokens");
  }
  const Tokenizer& tok = tokenizer();
  Sampler sampler(sampling);
  StreamDecoder decoder(tok);
  reset_stats();

  GenerateResult r;
  r.prompt_tokens.assign(prompt.begin(), prompt.end());
  const auto t0 = Clock::now();
  std::vector<float> logits = forward(session, prompt, /*all_logits=*/false);
  const auto t_prefill = Clock::now();
  r.timings.prefill_ms = ms_between(t0, t_prefill);
  const uint32_t capacity = config().session_max_tokens;

  std::vector<int32_t> history = session_tokens(session);
  Clock::time_point t_first{};
  uint64_t decode_steps = 0;
  r.finish_reason = "length";
  for (uint32_t step = 0; step < options.max_tokens; ++step) {
    const int32_t next = sampler.sample(logits, history);
    if (step == 0) t_first = Clock::now();
    if (options.stop_at_eos && next == tok.eos()) {
      r.finish_reason = "eos";
      break;
    }
    r.tokens.push_back(next);
    history.push_back(next);
    const std::string piece = decoder.push(next);
    r.text += piece;
    if (on_token && !on_token(next, piece)) {
      r.finish_reason = "stopped";
      break;
    }
    if (step + 1 == options.max_tokens) break;  // no forward for a token never sampled
    if (session_length(session) + 1 > capacity) {
      r.finish_reason = "capacity";
      break;
    }
    const int32_t one[1] = {next};
    logits = forward(session, one, false);
    ++decode_steps;
  }
  const std::string tail = decoder.finish();
  if (!tail.empty()) {
    r.text += tail;
    if (on_token) on_token(-1, tail);
  }
  const auto t_end = Clock::now();
  if (t_first == Clock::time_point{}) t_first = t_end;
  r.timings.ttft_ms = ms_between(t0, t_first);
  r.timings.decode_ms = ms_between(t_first, t_end);
  r.timings.total_ms = ms_between(t0, t_end);
  r.timings.prefill_tok_s = prompt.size() / std::max(r.timings.prefill_ms / 1e3, 1e-9);
  // Decode speed: forward calls of one token after the prefill, over the time after the
  // first token (which includes sampling and streaming).
  r.timings.decode_tok_s =
      decode_steps > 0 ? decode_steps / std::max(r.timings.decode_ms / 1e3, 1e-9) : 0;
  r.stats = stats();
  return r;
}

}  // namespace lw
