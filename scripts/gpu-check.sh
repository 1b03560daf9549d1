#!/usr/bin/env bash
# The one command the GPU machine runs: correctness first, then speed, each phase under its
# own `timeout` so a hang in one phase costs only that phase. Uses the portable binaries of
# scripts/build-portable.sh (BIN, default .portable/bin). Logs go to $OUT (default
# /tmp/lw-gpu-out); a short table of every phase and number is printed last.
# Phases: env (GPU, libraries) | tests (lw_cuda_tests: synthesizes its own tiny models) |
# memcheck (compute-sanitizer on the op tests) | synth (mistral-7b q4_k_m, 32 layers, split;
# runs on the CPUs in the background while the tests use the GPU) | bench (tg128, pp512,
# 32 sessions batched decode) | ab (tg128 with the small-batch GEMV on, then
# LW_CUDA_GEMV_SMALL=0) | tune (decode variants) | smallcfg (tg128 per small-GEMV kernel
# shape, LW_CUDA_GEMV_SMALL_CFG; exports the fastest for ncu) | ncu (the main GEMV) |
# magistral (40 layers, if time allows) | int8 (tg128 with the int8 GEMV on/off and per
# variant, 32-session decode on/off, pp512 with the flash prefill attention on/off; not in
# the default list) | dequant (pp512 with LW_CUDA_DEQUANT_V2=0 and 1, ncu
# of the dequant kernels; not in the default list) | mma (the tensor-core int8 GEMV on and
# off: tg128, 32-session decode, ncu of its launches; not in the default list) | batch (the
# 32-session step per BATCH_VARIANTS, all layers and layers 0-1; not in the default list) |
# tg (tg128 per TG_VARIANTS, twice, interleaved; not in the default list).
# Environment: PHASES (default: all but smallcfg, in that order), TESTS_FILTER (gtest
# filter of the tests phase, default all), MEMCHECK_FILTER (gtest filter of memcheck),
# SMALL_CFGS (smallcfg indices, default 0-5), WORK (scratch for the models, default /tmp/lw-gpu-work), BENCH_REPS (3).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.portable/bin}
OUT=${OUT:-/tmp/lw-gpu-out}
WORK=${WORK:-/tmp/lw-gpu-work}
PHASES=${PHASES:-"env tests memcheck synth bench ab tune ncu magistral"}
REPS=${BENCH_REPS:-3}
mkdir -p "$OUT" "$WORK"
T0=$(date +%s)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

want() { [[ " $PHASES " == *" $1 "* ]]; }
elapsed() { echo $(($(date +%s) - T0)); }
note() { echo "$*" | tee -a "$SUMMARY"; }
# run_phase NAME SECONDS CMD...: runs CMD with a time limit, output appended to
# $OUT/$LOG.log (LOG defaults to NAME; at most 8 files come back from the machine).
run_phase() {
  local name=$1 limit=$2 log="$OUT/${LOG:-$1}.log"
  shift 2
  local t=$(date +%s)
  echo "=== [$name] start at +$(elapsed)s (limit ${limit}s): $*" | tee -a "$log" >&2
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  note "phase $name: rc=$rc in $(($(date +%s) - t))s$([[ $rc == 124 || $rc == 137 ]] && echo ' (TIMED OUT)')"
  return $rc
}

# Shared libraries build-portable.sh bundled (BIN/../lib); cuBLAS comes from the machine's
# CUDA toolkit or a pip wheel.
export LD_LIBRARY_PATH="$PWD/$BIN/../lib:${LD_LIBRARY_PATH:-}"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  $(dirname "$(find / -xdev -name 'libcublas.so.13*' 2>/dev/null | head -n 1)" 2>/dev/null); do
  [[ -e "$d/libcublas.so.13" ]] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done

# Kernel | us | MB read | MB written | GB/s from an ncu log of those three metrics.
ncu_table() {  # kernel | us | MB read | MB written | GB/s
  awk '/, Context [0-9]+, Stream/ {n=$0; sub(/\(.*$/, "", n); sub(/^ +void +/, "", n); sub(/^ +/, "", n)}
       /^ +dram__bytes_read.sum/ {r=$NF; if ($(NF-1)=="Kbyte") r/=1000; if ($(NF-1)=="byte") r/=1e6; if ($(NF-1)=="Gbyte") r*=1000}
       /^ +dram__bytes_write.sum/ {w=$NF; if ($(NF-1)=="Kbyte") w/=1000; if ($(NF-1)=="byte") w/=1e6; if ($(NF-1)=="Gbyte") w*=1000}
       /^ +gpu__time_duration.sum/ {t=$NF; if ($(NF-1)=="ms") t*=1000; if ($(NF-1)=="ns") t/=1000;
          printf "%-60s %9.2f us %9.2f MB rd %8.2f MB wr %7.0f GB/s\n", substr(n,1,60), t, r, w, (r+w)/t*1000}' "$1"
}

if want env; then
  {
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,clocks.max.sm --format=csv
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for b in "$BIN"/*; do echo "== $b"; ldd "$b"; done
    nproc; free -g; df -h /tmp
    which ncu compute-sanitizer nsys || true
  } >"$OUT/env.log" 2>&1
  note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
  # The bandwidth ceiling: a 2 GiB device-to-device copy (read + write bytes), median of 20.
  timeout 60 python3 - >>"$OUT/env.log" 2>&1 <<'PY'
import torch
a = torch.empty(2 << 30, dtype=torch.uint8, device="cuda"); a.random_(0, 255)
b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); b.copy_(a); e.record(); e.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
ts.sort()
print("d2d copy bandwidth: %.0f GB/s (read+write, median of 20, 2 GiB)" % (2 * a.numel() / ts[10] / 1e9))
PY
  grep 'd2d copy' "$OUT/env.log" | tee -a "$SUMMARY"
fi

# The model synthesis is CPU work: start it first, in the background, under its own limit.
M7="$WORK/m7"
SYNTH_PID=
if want synth; then
  (
    run_phase synth 330 bash -c "'$BIN/fragment_tool' --no-progress synth --preset mistral-7b \
      --quant q4_k_m -o '$M7.gguf' -f && '$BIN/fragment_tool' --no-progress split '$M7.gguf' \
      -o '$M7.store' -f && rm -f '$M7.gguf'"
  ) &
  SYNTH_PID=$!
fi

if want tests; then
  run_phase tests 150 "$BIN/lw_cuda_tests" --gtest_color=no --gtest_filter="${TESTS_FILTER:-*}"
  note "tests: $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -20 | tee -a "$SUMMARY"
  grep -E '^\[(model|decode)\]' "$OUT/tests.log" | tee -a "$SUMMARY"
fi
if want memcheck && command -v compute-sanitizer >/dev/null; then
  run_phase memcheck 150 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    "$BIN/lw_cuda_tests" --gtest_color=no \
    --gtest_filter="${MEMCHECK_FILTER:-CudaOps.*:CudaAttention.*:CudaGemv.*:CudaDequant.*:AllTypes/*}"
  note "memcheck: $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED) ' "$OUT/memcheck.log" | tr '\n' ' ')"
fi

if [[ -n "$SYNTH_PID" ]]; then wait "$SYNTH_PID"; fi
if want bench && [[ -f "$M7.store/manifest.json" ]]; then
  LOG=bench run_phase bench 150 "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda -p 512 \
    -n 128 --batch-sessions 32 --reps "$REPS" --bw-mib 0
  grep -E '^\||weight bandwidth|backend' "$OUT/bench.log" | tee -a "$SUMMARY"
fi
if want dequant && [[ -f "$M7.store/manifest.json" ]]; then
  # Prefill weight dequantization: pp512 with the v1 and v2 dequant_f16 kernels (same image),
  # twice each, interleaved, then ncu of the dequant launches of a one-layer pp512 under each.
  for v in 0 1 0 1; do
    (export LW_CUDA_DEQUANT_V2=$v LOG=bench; run_phase "dequant v2=$v" 60 "$BIN/layerwire" \
      bench --fragments "$M7.store" --backend cuda -p 512 -n 0 --reps 2 --bw-mib 0)
    note "dequant LW_CUDA_DEQUANT_V2=$v: $(grep -E '^\| pp' "$OUT/bench.log" | tail -n 1)"
  done
  if command -v ncu >/dev/null; then
    for v in 0 1; do
      (export LW_CUDA_DEQUANT_V2=$v LOG=ncu_dq$v; run_phase "ncu dequant v2=$v" 45 ncu \
        --clock-control none -k regex:dequant_f16 --launch-count 7 --metrics \
        gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum "$BIN/layerwire" \
        bench --fragments "$M7.store" --backend cuda --layers 0 -p 512 -n 0 --reps 1 --bw-mib 0)
      grep -E 'dequant_f16|duration|dram__bytes' "$OUT/ncu_dq$v.log" | sed 's/^ *//' | \
        cut -c1-110 | tee -a "$SUMMARY"
    done
  fi
fi
if want ab && [[ -f "$M7.store/manifest.json" ]]; then
  # The small-batch decode GEMV (gemv_small.cu) vs the tensor-core GEMV, same process image.
  for v in "LW_CUDA_GEMV_SMALL=1" "LW_CUDA_GEMV_SMALL=0"; do
    if (($(elapsed) > 450)); then break; fi
    (export "$v" LOG=bench; run_phase "ab $v" 60 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 0 -n 128 --reps 2 --bw-mib 0)
    note "ab $v: $(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1)"
    note "ab $v: $(grep -E 'weight bandwidth' "$OUT/bench.log" | tail -n 1)"
  done
fi
if want int8 && [[ -f "$M7.store/manifest.json" ]]; then
  # The int8 GEMV (gemv_q8.cu) against the f32 GEMV it replaces, and its shapes: tg128 per
  # variant, then the 32-session batched decode with it on and off (same process image).
  for v in "LW_CUDA_INT8_GEMV_MAX_TOKENS=16" "LW_CUDA_INT8_GEMV_MAX_TOKENS=0" \
    "LW_CUDA_GEMV_Q8_ROWS=2" "LW_CUDA_FUSE=0" "LW_CUDA_GRAPHS=0" "LW_CUDA_ATTN_V2=0" \
    ${INT8_EXTRA:-}; do
    if (($(elapsed) > ${INT8_UNTIL:-400})); then note "int8: out of time before $v"; break; fi
    (export $v LOG=bench; run_phase "int8 $v" 45 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 0 -n 128 --reps 2 --bw-mib 0)
    note "int8 $v: $(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1) $(grep -E 'weight bandwidth' "$OUT/bench.log" | tail -n 1)"
  done
  for v in "LW_CUDA_GEMM_MIN_TOKENS=17" "LW_CUDA_GEMM_MIN_TOKENS=65 LW_CUDA_INT8_GEMV_MAX_TOKENS=64" \
    "LW_CUDA_GEMM_MIN_TOKENS=65 LW_CUDA_INT8_GEMV_MAX_TOKENS=0" "LW_CUDA_GEMM_SPLIT_ACTS=0"; do
    if (($(elapsed) > ${INT8_UNTIL:-400})); then break; fi
    (export $v LOG=bench; run_phase "int8 batch $v" 60 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 0 -n 32 --batch-sessions 32 --reps 1 --bw-mib 0)
    note "int8 batch $v: $(grep -E '^\| tg[0-9]+x' "$OUT/bench.log" | tail -n 1)"
  done
  # Where the int8 GEMV's time goes: the gate/up and down launches of a decode step (layers
  # 0-1: 5 launches per layer), with occupancy, warp-state and scheduler sections.
  if command -v ncu >/dev/null; then
    LOG=ncu_q8 run_phase ncu_q8 60 ncu --clock-control none -k regex:gemv_q8_kernel \
      --launch-skip 23 --launch-count 2 --section SpeedOfLight --section Occupancy \
      --section WarpStateStats --section SchedulerStats --section LaunchStats \
      --section MemoryWorkloadAnalysis "$BIN/layerwire" bench --fragments "$M7.store" \
      --backend cuda --layers 0-1 -p 0 -n 8 --reps 1 --bw-mib 0
  fi
  # The tensor-core prefill attention (attention_flash.cu) on and off.
  for v in "LW_CUDA_FLASH_ATTN=1" "LW_CUDA_FLASH_ATTN=0"; do
    if (($(elapsed) > ${INT8_UNTIL:-400})); then break; fi
    (export "$v" LOG=bench; run_phase "flash $v" 60 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 512 -n 0 --reps 2 --bw-mib 0)
    note "flash $v: $(grep -E '^\| pp' "$OUT/bench.log" | tail -n 1)"
  done
fi
if want mma && [[ -f "$M7.store/manifest.json" ]]; then
  # The tensor-core int8 GEMV (gemv_q8_mma.cuh), same image: tg128 with it for every call
  # (LW_CUDA_GEMV_MMA=2) vs the default (dp4a for <= 8 tokens), interleaved; the 32-session
  # decode step with it (default) vs cuBLAS (=0); ncu of its one-token decode launches.
  for v in 2 1 2 1; do
    if (($(elapsed) > ${MMA_UNTIL:-420})); then note "mma: out of time before $v"; break; fi
    (export LW_CUDA_GEMV_MMA=$v LOG=bench; run_phase "mma tg LW_CUDA_GEMV_MMA=$v" 45 \
      "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda -p 0 -n 128 --reps 2 --bw-mib 0)
    note "mma LW_CUDA_GEMV_MMA=$v: $(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1) $(grep -E 'weight bandwidth' "$OUT/bench.log" | tail -n 1)"
  done
  for v in "LW_CUDA_GEMV_MMA=1" "LW_CUDA_GEMV_MMA=0" ${MMA_EXTRA:-}; do
    if (($(elapsed) > ${MMA_UNTIL:-420})); then break; fi
    (export $v LOG=bench; run_phase "mma batch $v" 60 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 0 -n 32 --batch-sessions 32 --reps 2 --bw-mib 0)
    note "mma batch $v: $(grep -E '^\| tg[0-9]+x' "$OUT/bench.log" | tail -n 1)"
  done
  if command -v ncu >/dev/null; then
    (export LW_CUDA_GEMV_MMA=2 LOG=ncu_mma; run_phase ncu_mma 60 ncu --clock-control none \
      -k regex:gemv_q8 --launch-skip 10 --launch-count 8 --metrics \
      gpu__time_duration.sum,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size \
      "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda --layers 0-1 -p 0 -n 8 \
      --reps 1 --bw-mib 0)
    grep -E 'gemv_q8|duration|dram__bytes|warps_active|issue_active|registers|grid_size' \
      "$OUT/ncu_mma.log" | sed 's/^ *//' | cut -c1-110 | tee -a "$SUMMARY"
  fi
fi
if want batch && [[ -f "$M7.store/manifest.json" ]]; then
  # The 32-session decode step per variant (BATCH_VARIANTS: space-separated VAR=VALUE[,VAR=VALUE]
  # items, "-" for the defaults) over all layers, then over layers 0-1 (time per layer).
  for v in ${BATCH_VARIANTS:--}; do
    for layers in 0-31 0-1; do
      (if [[ $v != - ]]; then export ${v//,/ }; fi; LOG=bench run_phase "batch $v layers $layers" 60 \
        "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda --layers $layers -p 0 -n 32 \
        --batch-sessions 32 --reps 2 --bw-mib 0)
      note "batch $v layers $layers: $(grep -E '^\| tg[0-9]+x' "$OUT/bench.log" | tail -n 1)"
    done
  done
fi
if want tg && [[ -f "$M7.store/manifest.json" ]]; then
  # tg128 per variant (TG_VARIANTS as BATCH_VARIANTS), the list run twice, interleaved.
  for round in 1 2; do
    for v in ${TG_VARIANTS:--}; do
      (if [[ $v != - ]]; then export ${v//,/ }; fi; LOG=bench run_phase "tg $v" 45 \
        "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda -p 0 -n 128 --reps 2 --bw-mib 0)
      note "tg $v (round $round): $(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1)"
    done
  done
fi
if want tune && [[ -f "$M7.store/manifest.json" ]]; then
  # Decode variants: graphs off, fusion off, fixed K-splits (tg64, one rep each).
  for v in "LW_CUDA_GRAPHS=0" "LW_CUDA_FUSE=0" "LW_CUDA_GEMV_SPLITS=4" "LW_CUDA_GEMV_SPLITS=8" \
    "LW_CUDA_GEMV_SPLITS=16" "LW_CUDA_GEMV_SPLITS=32"; do
    if (($(elapsed) > 420)); then break; fi
    (export "$v" LOG=bench; run_phase "tune $v" 40 "$BIN/layerwire" bench --fragments \
      "$M7.store" --backend cuda -p 0 -n 64 --reps 1 --bw-mib 0)
    note "tune $v: $(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1)"
  done
  if (($(elapsed) < 430)); then
    (export LW_CUDA_GEMM_SPLIT_ACTS=0 LOG=bench; run_phase "tune one-plane prefill" 40 \
      "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda -p 512 -n 0 --reps 2 --bw-mib 0)
    note "tune LW_CUDA_GEMM_SPLIT_ACTS=0: $(grep -E '^\| pp' "$OUT/bench.log" | tail -n 1)"
  fi
fi
if want smallcfg && [[ -f "$M7.store/manifest.json" ]]; then
  # tg128 once per small-GEMV configuration (gemv_small_kernel.cuh), same process image.
  best_cfg= best_tps=0
  for c in ${SMALL_CFGS:-0 1 2 3 4 5}; do
    if (($(elapsed) > ${SMALLCFG_UNTIL:-330})); then note "smallcfg: out of time before cfg $c"; break; fi
    (export LW_CUDA_GEMV_SMALL_CFG=$c LOG=bench; run_phase "smallcfg $c" 45 "$BIN/layerwire" \
      bench --fragments "$M7.store" --backend cuda -p 0 -n 128 --reps 2 --bw-mib 0)
    line=$(grep -E '^\| tg' "$OUT/bench.log" | tail -n 1)
    note "smallcfg $c: $line $(grep -E 'weight bandwidth' "$OUT/bench.log" | tail -n 1)"
    tps=$(awk -F'|' '{print $3 + 0}' <<<"$line")
    if awk -v a="$tps" -v b="$best_tps" 'BEGIN {exit !(a > b)}'; then best_cfg=$c best_tps=$tps; fi
  done
  if [[ -n "$best_cfg" ]]; then
    export LW_CUDA_GEMV_SMALL_CFG=$best_cfg
    note "smallcfg: fastest cfg $best_cfg ($best_tps tok/s); ncu uses it"
  fi
fi
if want ncu && command -v ncu >/dev/null && [[ -f "$M7.store/manifest.json" ]]; then
  # Every kernel of decode steps (layers 0-1, after the graph warm-up), then of the two
  # prefills of 512 tokens of a one-layer bench (warm-up, timed): time, DRAM bytes.
  metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
  LOG=ncu run_phase ncu_decode 60 ncu --clock-control none --launch-skip 120 --launch-count 26 \
    --metrics $metrics "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda \
    --layers 0-1 -p 0 -n 16 --reps 1 --bw-mib 0
  echo "--- ncu decode (layers 0-1, one step):" | tee -a "$SUMMARY"
  ncu_table "$OUT/ncu.log" | tee -a "$SUMMARY"
  LOG=ncu run_phase ncu_prefill 60 ncu --clock-control none --launch-skip 0 --launch-count 70 \
    --metrics $metrics "$BIN/layerwire" bench --fragments "$M7.store" --backend cuda \
    --layers 0 -p 512 -n 0 --reps 1 --bw-mib 0
  echo "--- ncu prefill 512 (layer 0):" | tee -a "$SUMMARY"
  ncu_table <(sed -n '/ncu_prefill/,$p' "$OUT/ncu.log") | tee -a "$SUMMARY"
fi
if want ncu_batch && command -v ncu >/dev/null && [[ -f "$M7.store/manifest.json" ]]; then
  # Every kernel of two 32-session decode steps (layers 0-1) after the warm-up.
  metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
  LOG=ncu_batch run_phase ncu_batch 90 ncu --clock-control none --launch-skip ${BATCH_SKIP:-120} \
    --launch-count ${BATCH_COUNT:-40} --metrics $metrics "$BIN/layerwire" bench --fragments \
    "$M7.store" --backend cuda --layers 0-1 -p 0 -n 6 --batch-sessions 32 --reps 1 --bw-mib 0
  echo "--- ncu 32-session decode (layers 0-1):" | tee -a "$SUMMARY"
  ncu_table "$OUT/ncu_batch.log" | tee -a "$SUMMARY"
  # Where the tensor-core GEMV's time goes at 32 tokens: gate/up and down of the first step.
  LOG=ncu_batch_mma run_phase ncu_batch_mma 90 ncu --clock-control none -k regex:gemv_q8_mma_kernel \
    --launch-skip 1 --launch-count 2 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section SchedulerStats --section LaunchStats \
    --section InstructionStats --section ComputeWorkloadAnalysis "$BIN/layerwire" bench \
    --fragments "$M7.store" --backend cuda --layers 0-1 -p 0 -n 2 --batch-sessions 32 --reps 1 \
    --bw-mib 0
fi
rm -rf "$M7.store"

MG="$WORK/mg"
if want magistral && (($(elapsed) < 330)); then
  left=$((560 - $(elapsed)))
  LOG=synth run_phase magistral_synth $((left - 90)) bash -c "'$BIN/fragment_tool' --no-progress synth \
    --preset magistral-small --quant q4_k_m -o '$MG.gguf' -f && '$BIN/fragment_tool' \
    --no-progress split '$MG.gguf' -o '$MG.store' -f && rm -f '$MG.gguf'"
  if [[ -f "$MG.store/manifest.json" ]]; then
    left=$((585 - $(elapsed)))
    LOG=bench run_phase magistral_bench $left "$BIN/layerwire" bench --fragments "$MG.store" \
      --backend cuda -p 512 -n 64 --reps 1 --bw-mib 0
    grep -E '^\||weight bandwidth' "$OUT/bench.log" | tail -n 4 | tee -a "$SUMMARY"
  fi
fi

echo
echo "================ summary (+$(elapsed)s) ================"
cat "$SUMMARY"
