// Sampler: picks the next token from a row of logits. Filters run in this order (the order of
// Hugging Face's generate): repetition penalty over the last repeat_last_n tokens ->
// temperature (0 = greedy argmax) -> top-k -> softmax -> top-p -> min-p -> renormalize ->
// one draw from a std::mt19937_64 seeded with `seed`. The draw uses the engine's raw 64-bit
// output (not a std:: distribution, whose algorithm varies by library), so the same seed and
// the same logits give the same tokens on every platform. A Sampler is one stream's state:
// not thread-safe; use one per generation.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace lw {

struct SamplingParams {
  // Logits are divided by this before softmax; 0 means greedy (argmax, lowest id on ties).
  // Finite and >= 0.
  float temperature = 0.8f;
  // Keep only the k highest logits; 0 turns it off. >= 0.
  int32_t top_k = 40;
  // Keep the smallest set of most likely tokens whose probabilities sum to >= top_p;
  // 1 turns it off. In (0, 1].
  float top_p = 0.95f;
  // Drop tokens whose probability is below min_p x the highest probability; 0 turns it off.
  // In [0, 1].
  float min_p = 0.05f;
  // Logits of tokens seen in the window: positive ones divided by it, negative ones multiplied
  // (llama.cpp / CTRL style); 1 turns it off. Finite and > 0.
  float repeat_penalty = 1.1f;
  // How many of the most recent tokens the penalty looks at; 0 turns it off. >= 0.
  int32_t repeat_last_n = 64;
  // Seeds the random engine: the same seed gives the same choices.
  uint64_t seed = 0;
};

// Throws LW-TOK-005 naming the field and value when a parameter is out of range.
void sampling_params_check(const SamplingParams& params);

// A token still in the running, with its (penalized, temperature-scaled) logit and, once
// computed, its probability.
struct SamplerCandidate {
  int32_t id;
  float logit;
  float p;
};

// The steps, exposed for tests. Candidate lists are sorted by logit, highest first (ties: lower
// id first) from sampler_top_k on; sampler_softmax sets p (summing to 1) over the list.
void sampler_apply_penalty(std::span<float> logits, std::span<const int32_t> history, float penalty,
                           int32_t last_n);
void sampler_top_k(std::vector<SamplerCandidate>& candidates, int32_t k);  // sorts; k=0: all
void sampler_softmax(std::vector<SamplerCandidate>& candidates);
void sampler_top_p(std::vector<SamplerCandidate>& candidates, float top_p);
void sampler_min_p(std::vector<SamplerCandidate>& candidates, float min_p);
// Draws one candidate by p (p need not sum to 1) with a uniform number made from one rng()
// output.
int32_t sampler_draw(const std::vector<SamplerCandidate>& candidates, std::mt19937_64& rng);

class Sampler {
 public:
  // Validates (LW-TOK-005) and seeds the engine with params.seed.
  explicit Sampler(const SamplingParams& params);

  // The next token for `logits` (one vocabulary-sized row) after `history` (every token so
  // far, oldest first). Throws LW-TOK-005 for empty logits or a NaN logit, and (when the
  // penalty is on) LW-TOK-003 for a history id in the window outside the row.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplingParams& params() const { return params_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;
  std::vector<SamplerCandidate> candidates_;
};

}  // namespace lw
