// Fusion of a recorded op segment into launches (see cuda_backend.h for the rules).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embed.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_q8.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"

namespace lw::cuda_impl {

namespace {

using Kind = PendingOp::Kind;

bool overlaps(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + static_cast<uint64_t>(b_bytes) && pb < pa + static_cast<uint64_t>(a_bytes);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int64_t out_bytes(const PendingOp& mm) { return mm.n * mm.w.rows * 4; }
int64_t in_bytes(const PendingOp& mm) { return mm.n * mm.w.cols * 4; }

}  // namespace

int64_t CudaBackend::int8_token_limit(GgmlType type, int64_t k) const {
  if (options_.int8_gemv_max_tokens <= 0 || !cuda::gemv_q8_supported(type, k, 1)) return 0;
  const int64_t dp4a = std::min(options_.int8_gemv_max_tokens, options_.gemm_min_tokens - 1);
  return cuda::gemv_q8_max_tokens(type) > cuda::kGemvQ8MaxTokens
             ? std::max(dp4a, options_.int8_mma_max_tokens)
             : dp4a;
}

std::vector<Launch> CudaBackend::plan_launches(const std::vector<PendingOp>& ops) {
  std::vector<Launch> out;
  const auto use_gemv = [this](const PendingOp& op) {
    if (op.kind != Kind::kMatmul) return false;
    return (op.n < options_.gemm_min_tokens && cuda::gemv_supported(op.w.type, op.w.cols)) ||
           op.n <= int8_token_limit(op.w.type, op.w.cols);
  };
  // An RMSNorm whose output feeds the next matmul on the int8 GEMV is folded into that
  // launch (the kernel normalizes while it quantizes and still stores the norm's output).
  const auto norm_feeds = [this, &use_gemv](const PendingOp& nm, const PendingOp& mm) {
    const int64_t bytes = nm.n * nm.i1 * 4;
    return options_.fuse && nm.kind == Kind::kRmsNorm && use_gemv(mm) && mm.in0 == nm.out &&
           mm.n == nm.n && mm.w.cols == nm.i1 && mm.n <= int8_token_limit(mm.w.type, mm.w.cols) &&
           cuda::gemv_q8_can_fuse_norm(mm.w.type, mm.w.cols, static_cast<int>(mm.n)) &&
           !overlaps(nm.in0, bytes, nm.out, bytes) && !overlaps(nm.in1, nm.i1 * 4, nm.out, bytes) &&
           aligned16(nm.in0) && aligned16(nm.in1) && aligned16(nm.out);
  };
  size_t i = 0;
  while (i < ops.size()) {
    const PendingOp* norm_op = nullptr;
    if (i + 1 < ops.size() && norm_feeds(ops[i], ops[i + 1])) {
      norm_op = &ops[i];
      ++i;
    }
    const PendingOp& op = ops[i];
    if (use_gemv(op)) {
      std::vector<const PendingOp*> group{&op};
      size_t j = i + 1;
      if (options_.fuse) {
        // Same type, or (int8 GEMV) a run of a second type after the first: Q4_K q/k + Q6_K v.
        const auto joins = [&](const PendingOp& o) {
          if (o.w.type == group.back()->w.type) return true;
          return group.back()->w.type == op.w.type &&
                 o.n <= std::min(int8_token_limit(op.w.type, op.w.cols),
                                 int8_token_limit(o.w.type, o.w.cols)) &&
                 cuda::gemv_q8_pair_supported(op.w.type, o.w.type, op.w.cols, 1);
        };
        while (j < ops.size() && group.size() < static_cast<size_t>(cuda::kGemvMaxGroup) &&
               use_gemv(ops[j]) && ops[j].in0 == op.in0 && ops[j].n == op.n &&
               ops[j].w.cols == op.w.cols && joins(ops[j])) {
          bool clash = overlaps(ops[j].out, out_bytes(ops[j]), op.in0, in_bytes(op));
          if (norm_op != nullptr) {  // the fused kernel reads the norm's input in every block
            clash = clash || overlaps(ops[j].out, out_bytes(ops[j]), norm_op->in0, in_bytes(op));
          }
          for (const PendingOp* g : group) {
            clash = clash || overlaps(ops[j].out, out_bytes(ops[j]), g->out, out_bytes(*g));
          }
          if (clash) break;
          group.push_back(&ops[j]);
          ++j;
        }
      }
      const PendingOp* add_op = nullptr;
      const PendingOp* swiglu_op = nullptr;
      if (options_.fuse && j < ops.size()) {
        const PendingOp& nx = ops[j];
        if (group.size() == 1 && nx.kind == Kind::kAdd && nx.n == op.n * op.w.rows &&
            (nx.in0 == op.out) != (nx.in1 == op.out) &&
            !overlaps(nx.out, nx.n * 4, op.in0, in_bytes(op))) {
          const float* other = nx.in0 == op.out ? nx.in1 : nx.in0;
          if (!overlaps(other, nx.n * 4, op.out, out_bytes(op))) add_op = &nx;
        } else if (group.size() == 2 && nx.kind == Kind::kSwiglu &&
                   group[0]->w.rows == group[1]->w.rows && group[0]->w.type == group[1]->w.type &&
                   nx.in0 == group[0]->out && nx.in1 == group[1]->out && nx.n == op.n * op.w.rows &&
                   !overlaps(nx.out, nx.n * 4, op.in0, in_bytes(op))) {
          swiglu_op = &nx;
        }
      }
      if (norm_op != nullptr) {
        // Every block reads the norm's input: no output of this launch may overwrite it.
        bool clash = overlaps(op.out, out_bytes(op), norm_op->in0, in_bytes(op));
        for (const PendingOp* e : {add_op, swiglu_op}) {
          clash = clash || (e != nullptr && overlaps(e->out, e->n * 4, norm_op->in0, in_bytes(op)));
        }
        if (clash) {
          add_single(*norm_op, &out);
          norm_op = nullptr;
        }
      }
      add_matmul_group(group, add_op, swiglu_op, norm_op, &out);
      i = j + ((add_op != nullptr || swiglu_op != nullptr) ? 1 : 0);
      continue;
    }
    if (options_.fuse && (op.kind == Kind::kRope || op.kind == Kind::kKvWrite)) {
      // Up to two RoPEs sharing positions and shape, then optionally the KV write.
      std::vector<const PendingOp*> ropes;
      size_t j = i;
      while (j < ops.size() && ropes.size() < 2 && ops[j].kind == Kind::kRope && ops[j].n == op.n &&
             ops[j].i3 == op.i3 && ops[j].ids == op.ids && ops[j].f == op.f &&
             ops[j].mode == op.mode && (ropes.empty() || ops[j].out != ropes[0]->out)) {
        ropes.push_back(&ops[j]);
        ++j;
      }
      const PendingOp* kvw = nullptr;
      if (j < ops.size() && ops[j].kind == Kind::kKvWrite &&
          (ropes.empty() || (ops[j].batch.positions == op.ids && ops[j].batch.n_tokens == op.n &&
                             ops[j].kv.head_dim == op.i3))) {
        kvw = &ops[j];
        ++j;
      }
      if (ropes.size() + (kvw != nullptr ? 1 : 0) >= 2) {
        Launch l;
        std::vector<cuda::RopeTensor> tensors;
        for (const PendingOp* r : ropes) tensors.push_back({r->out, r->i1, r->i2});
        const PendingOp first = ropes.empty() ? *kvw : *ropes[0];
        const bool has_kv = kvw != nullptr;
        const PendingOp kv_op = has_kv ? *kvw : PendingOp{};
        l.run = [this, tensors, first, has_kv, kv_op] {
          const int64_t n_tok = has_kv ? kv_op.batch.n_tokens : first.n;
          const int64_t hd = tensors.empty() ? kv_op.kv.head_dim : first.i3;
          cuda::rope_kv_write(tensors.data(), static_cast<int>(tensors.size()), n_tok, hd,
                              tensors.empty() ? kv_op.batch.positions : first.ids, first.f,
                              first.mode, has_kv ? &kv_op.kv : nullptr,
                              has_kv ? &kv_op.batch : nullptr,
                              cuda::KvWriteSource{kv_op.in0, kv_op.in1}, stream_);
        };
        out.push_back(std::move(l));
        i = j;
        continue;
      }
    }
    add_single(op, &out);
    ++i;
  }
  return out;
}

void CudaBackend::add_matmul_group(const std::vector<const PendingOp*>& mats,
                                   const PendingOp* add_op, const PendingOp* swiglu_op,
                                   const PendingOp* norm_op, std::vector<Launch>* out) {
  const PendingOp& first = *mats[0];
  std::vector<cuda::GemvMatrix> gm;
  for (const PendingOp* m : mats) {
    cuda::GemvMatrix g;
    g.type = m->w.type;
    g.w = m->w.data;
    g.rows = m->w.rows;
    g.y = m->out;
    g.ldy = m->w.rows;
    gm.push_back(g);
  }
  if (add_op != nullptr) {
    gm[0].add_in = add_op->in0 == first.out ? add_op->in1 : add_op->in0;
    gm[0].add_out = add_op->out;
    gm[0].ld_add = first.w.rows;
  }
  cuda::GemvSwiglu sw;
  if (swiglu_op != nullptr) {
    sw.out = swiglu_op->out;
    sw.ld_out = first.w.rows;
  }
  const int64_t k = first.w.cols;
  const int64_t n = first.n;
  const cuda::GemvTuning tuning{options_.gemv_splits};
  // The int8 GEMV takes 8 tokens per launch (32 on tensor cores), the f32/f16 GEMV kernels 64.
  bool q8 = true;
  int64_t chunk = cuda::kGemvMaxTokens;
  for (const PendingOp* m : mats) {
    q8 = q8 && n <= int8_token_limit(m->w.type, k);
    chunk = std::min<int64_t>(chunk, cuda::gemv_q8_max_tokens(m->w.type));
  }
  if (!q8) chunk = cuda::kGemvMaxTokens;
  Launch l;
  for (int64_t c = 0; c < n; c += chunk) {
    const int nc = static_cast<int>(std::min<int64_t>(chunk, n - c));
    if (q8) {
      l.act_ws =
          std::max(l.act_ws, cuda::gemv_q8_workspace_bytes(gm.data(), static_cast<int>(gm.size()),
                                                           k, nc, info_.sm_count));
      continue;
    }
    l.gemv_ws =
        std::max(l.gemv_ws, cuda::gemv_workspace_bytes(gm.data(), static_cast<int>(gm.size()), k,
                                                       nc, info_.sm_count, tuning));
    if (swiglu_op != nullptr) {
      l.gemv_ws = std::max(l.gemv_ws, cuda::gemv_min_workspace_bytes(gm.data(), 2, nc));
    }
  }
  const bool has_swiglu = swiglu_op != nullptr;
  // With a fused norm the kernel reads the norm's input and writes the norm's output.
  cuda::GemvQ8Norm nrm;
  const float* x = first.in0;
  if (norm_op != nullptr) {
    LW_CHECK(q8 && n <= chunk, "norm fusion outside the int8 GEMV");
    nrm.weight = norm_op->in1;
    nrm.eps = norm_op->f;
    nrm.out = norm_op->out;
    x = norm_op->in0;
  }
  const bool has_norm = norm_op != nullptr;
  l.run = [this, gm, sw, has_swiglu, k, n, x, tuning, q8, chunk, nrm, has_norm] {
    for (int64_t c = 0; c < n; c += chunk) {
      const int nc = static_cast<int>(std::min<int64_t>(chunk, n - c));
      std::vector<cuda::GemvMatrix> part = gm;
      for (cuda::GemvMatrix& g : part) {
        g.y += c * g.ldy;
        if (g.add_out != nullptr) {
          g.add_in += c * g.ld_add;
          g.add_out += c * g.ld_add;
        }
      }
      cuda::GemvSwiglu s = sw;
      if (has_swiglu) s.out += c * s.ld_out;
      if (q8) {
        cuda::GemvQ8Options q8o;
        q8o.norm = has_norm ? &nrm : nullptr;
        cuda::gemv_q8(part.data(), static_cast<int>(part.size()), k, x + c * k, k, nc,
                      has_swiglu ? &s : nullptr, act_ws_.get(), act_ws_.size(), info_.sm_count,
                      stream_, q8o);
      } else {
        cuda::gemv(part.data(), static_cast<int>(part.size()), k, x + c * k, k, nc,
                   has_swiglu ? &s : nullptr, gemv_ws_.get(), gemv_ws_.size(), info_.sm_count,
                   stream_, tuning);
      }
    }
  };
  out->push_back(std::move(l));
}

void CudaBackend::add_single(const PendingOp& op, std::vector<Launch>* out) {
  Launch l;
  const PendingOp o = op;
  switch (op.kind) {
    case Kind::kMatmul: {
      if ((op.n < options_.gemm_min_tokens && cuda::gemv_supported(op.w.type, op.w.cols)) ||
          op.n <= int8_token_limit(op.w.type, op.w.cols)) {
        add_matmul_group({&op}, nullptr, nullptr, nullptr, out);
        return;
      }
      const int64_t chunk_rows =
          std::max<int64_t>(64, static_cast<int64_t>(options_.gemm_chunk_bytes) / (2 * op.w.cols));
      l.gemm_ws = cuda::gemm_workspace_bytes(op.w.type, op.w.rows, op.w.cols, op.n, chunk_rows,
                                             options_.gemm_split_acts);
      l.run = [this, o] {
        cuda::GemmArgs a;
        a.type = o.w.type;
        a.w = o.w.data;
        a.rows = o.w.rows;
        a.k = o.w.cols;
        a.x = o.in0;
        a.ldx = o.w.cols;
        a.n_tok = o.n;
        a.y = o.out;
        a.ldy = o.w.rows;
        a.split_acts = options_.gemm_split_acts;
        cuda::gemm(a, cublas_, gemm_ws_.get(), gemm_ws_.size(), stream_);
      };
      break;
    }
    case Kind::kRmsNorm:
      l.run = [this, o] { cuda::rms_norm(o.in0, o.in1, o.n, o.i1, o.f, o.out, stream_); };
      break;
    case Kind::kRope:
      l.run = [this, o] { cuda::rope(o.out, o.n, o.i1, o.i2, o.i3, o.ids, o.f, o.mode, stream_); };
      break;
    case Kind::kAdd:
      l.run = [this, o] { cuda::add(o.in0, o.in1, o.n, o.out, stream_); };
      break;
    case Kind::kSwiglu:
      l.run = [this, o] { cuda::swiglu(o.in0, o.in1, o.n, o.out, stream_); };
      break;
    case Kind::kEmbed:
      l.run = [this, o] {
        cuda::embed_rows(o.w.type, o.w.data, o.w.rows, o.w.cols, o.ids, o.n, o.out, stream_);
      };
      break;
    case Kind::kKvWrite:
      l.run = [this, o] { cuda::kv_write(o.kv, o.batch, o.in0, o.in1, stream_); };
      break;
    case Kind::kAttention: {
      const cuda::AttentionPlan plan =
          cuda::attention_plan(o.batch.n_tokens, o.max_pos_bucket, o.n, o.kv, info_.sm_count);
      l.attn_ws = plan.workspace_bytes;
      l.run = [this, o, plan] {
        cuda::attention(o.kv, o.batch, o.in0, o.n, o.f, o.out, plan, attn_ws_.get(),
                        attn_ws_.size(), stream_);
      };
      break;
    }
    case Kind::kCopy:
      l.run = [this, o] {
        LW_CUDA_CHECK(cudaMemcpyAsync(o.out, o.src, static_cast<size_t>(o.n),
                                      cudaMemcpyDeviceToDevice, cuda::to_stream(stream_)));
      };
      break;
  }
  out->push_back(std::move(l));
}

}  // namespace lw::cuda_impl
