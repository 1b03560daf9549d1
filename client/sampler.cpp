#include "client/sampler.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <unordered_set>

#include "common/error.h"

namespace lw {
namespace {

[[noreturn]] void bad_param(const char* field, double value, const char* range) {
  std::ostringstream s;
  s << "sampling parameter " << field << " = " << value << " is out of range (" << range << ")";
  throw Error(ErrorCode::kTokSamplerParam, s.str());
}

bool by_logit(const SamplerCandidate& a, const SamplerCandidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

void sampling_params_check(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    bad_param("temperature", p.temperature, "finite, >= 0; 0 = greedy");
  }
  if (p.top_k < 0) bad_param("top_k", p.top_k, ">= 0; 0 = off");
  if (!(p.top_p > 0 && p.top_p <= 1)) bad_param("top_p", p.top_p, "(0, 1]; 1 = off");
  if (!(p.min_p >= 0 && p.min_p <= 1)) bad_param("min_p", p.min_p, "[0, 1]; 0 = off");
  if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0) {
    bad_param("repeat_penalty", p.repeat_penalty, "finite, > 0; 1 = off");
  }
  if (p.repeat_last_n < 0) bad_param("repeat_last_n", p.repeat_last_n, ">= 0; 0 = off");
}

void sampler_apply_penalty(std::span<float> logits, std::span<const int32_t> history, float penalty,
                           int32_t last_n) {
  if (penalty == 1.0f || last_n <= 0) return;
  const size_t n = std::min(history.size(), static_cast<size_t>(last_n));
  std::unordered_set<int32_t> seen(history.end() - n, history.end());
  for (int32_t id : seen) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) {
      throw Error(ErrorCode::kTokUnknownId, "history token " + std::to_string(id) +
                                                " is outside the logits row of " +
                                                std::to_string(logits.size()));
    }
    float& l = logits[id];
    l = l > 0 ? l / penalty : l * penalty;
  }
}

void sampler_top_k(std::vector<SamplerCandidate>& c, int32_t k) {
  if (k > 0 && static_cast<size_t>(k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit);
    c.resize(k);
  } else {
    std::sort(c.begin(), c.end(), by_logit);
  }
}

void sampler_softmax(std::vector<SamplerCandidate>& c) {
  float max = -INFINITY;
  for (const auto& x : c) max = std::max(max, x.logit);
  double sum = 0;
  for (auto& x : c) {
    x.p = max == -INFINITY ? 1.0f : std::exp(x.logit - max);  // all masked: uniform
    sum += x.p;
  }
  for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}

void sampler_top_p(std::vector<SamplerCandidate>& c, float top_p) {
  if (top_p >= 1.0f) return;
  double cum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= top_p) {
      c.resize(i + 1);
      return;
    }
  }
}

void sampler_min_p(std::vector<SamplerCandidate>& c, float min_p) {
  if (min_p <= 0.0f || c.empty()) return;
  float max = 0;
  for (const auto& x : c) max = std::max(max, x.p);
  const float threshold = min_p * max;
  std::erase_if(c, [&](const SamplerCandidate& x) { return x.p < threshold; });
}

int32_t sampler_draw(const std::vector<SamplerCandidate>& c, std::mt19937_64& rng) {
  LW_CHECK(!c.empty(), "sampler_draw on no candidates");
  double total = 0;
  for (const auto& x : c) total += x.p;
  // 53 random bits -> u in [0, 1).
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  double target = u * total, cum = 0;
  for (const auto& x : c) {
    cum += x.p;
    if (target < cum) return x.id;
  }
  return c.back().id;  // rounding left target == total
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  sampling_params_check(params_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) throw Error(ErrorCode::kTokSamplerParam, "logits row is empty");
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) {
      throw Error(ErrorCode::kTokSamplerParam, "logit of token " + std::to_string(i) + " is NaN");
    }
  }
  scratch_.assign(logits.begin(), logits.end());
  sampler_apply_penalty(scratch_, history, params_.repeat_penalty, params_.repeat_last_n);
  if (params_.temperature == 0.0f) {
    // Greedy: first maximum.
    return static_cast<int32_t>(std::max_element(scratch_.begin(), scratch_.end()) -
                                scratch_.begin());
  }
  candidates_.clear();
  candidates_.reserve(scratch_.size());
  for (size_t i = 0; i < scratch_.size(); ++i) {
    candidates_.push_back({static_cast<int32_t>(i), scratch_[i] / params_.temperature, 0.0f});
  }
  sampler_top_k(candidates_, params_.top_k);
  sampler_softmax(candidates_);
  sampler_top_p(candidates_, params_.top_p);
  sampler_min_p(candidates_, params_.min_p);
  return sampler_draw(candidates_, rng_);
}

}  // namespace lw
