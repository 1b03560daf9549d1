#!/usr/bin/env bash
# The main job on a tiny built-in model: installs what is missing, builds, synthesizes a tiny
# model (RANDOM weights: the text it would produce is meaningless), splits it into
# fragments, verifies them, inspects the store, joins it back and proves the GGUF is
# byte-identical, runs the whole model once and prints its logits summary, then starts two
# layer servers on loopback (layers 0-1 and 2-3), generates a streamed completion through
# RemoteLayerExecutor (head here, layers on the servers), prints the timings and the status
# table, and shuts the servers down. LW_DEMO_PORT_BASE (default 7100) picks the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
lw_install_deps

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLW_ENABLE_CUDA="${LW_ENABLE_CUDA:-OFF}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target fragment_tool layerwire layer_server

TOOL="$BUILD_DIR/tools/fragment_tool"
LW="$BUILD_DIR/tools/layerwire"
WORK=$(mktemp -d -t layerwire-demo-XXXXXX)
export BUILD_DIR LW_CLUSTER_DIR="$WORK/cluster"
cleanup() {
  if [ -f "$WORK/cluster.json" ]; then scripts/cluster.sh down "$WORK/cluster.json" >/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "synthesizing a tiny llama-family model (random weights, Q4_K_M mix)"
"$TOOL" synth --preset tiny --quant q4_k_m --seed 7 -o "$WORK/tiny.gguf"
step "splitting it into per-layer fragments"
"$TOOL" split "$WORK/tiny.gguf" -o "$WORK/tiny.frag"
step "verifying every file and tensor against the manifest"
"$TOOL" verify "$WORK/tiny.frag" --jobs 2
step "inspecting the store"
"$TOOL" inspect "$WORK/tiny.frag"
step "joining the fragments back into a GGUF"
"$TOOL" join "$WORK/tiny.frag" -o "$WORK/joined.gguf"
cmp "$WORK/tiny.gguf" "$WORK/joined.gguf" && echo "joined GGUF is byte-identical to the original"
step "corrupting one byte of layer 2 and verifying again (must fail and name the tensor)"
cp -r "$WORK/tiny.frag" "$WORK/damaged.frag"
printf '\xff' | dd of="$WORK/damaged.frag/blk.2.lwf" bs=1 seek=5000 conv=notrunc status=none
if "$TOOL" verify "$WORK/damaged.frag"; then
  echo "demo: verify did not catch the corruption" >&2
  exit 1
fi
echo "(verify refused the damaged store, as it must)"
if [ -x "$LW" ]; then
  step "running the whole model in one process (CPU backend): logits of 4 tokens"
  "$LW" eval --fragments "$WORK/tiny.frag" --tokens 1,15,27,300 --out "$WORK/logits.f32"
fi
PORT=${LW_DEMO_PORT_BASE:-7100}
# The demo cluster (config/demo-cluster.json) with this run's store and ports filled in.
sed -e "s#\"../demo.frag\"#\"$WORK/tiny.frag\"#" \
    -e "s/127.0.0.1:7101/127.0.0.1:$((PORT + 1))/; s/127.0.0.1:7102/127.0.0.1:$((PORT + 2))/" \
    -e "s/127.0.0.1:7111/127.0.0.1:$((PORT + 11))/; s/127.0.0.1:7112/127.0.0.1:$((PORT + 12))/" \
    config/demo-cluster.json > "$WORK/cluster.json"
step "starting two layer servers on loopback: layers 0-1 and layers 2-3 (scripts/cluster.sh up)"
scripts/cluster.sh up "$WORK/cluster.json"
step "generating a streamed completion through RemoteLayerExecutor (RANDOM weights: gibberish)"
"$LW" generate --config "$WORK/cluster.json" --prompt "The quick brown fox" --max-tokens 24 --greedy
step "the same prompt as JSON (tokens, timings, per-server bytes)"
"$LW" generate --config "$WORK/cluster.json" --prompt "The quick brown fox" --max-tokens 8 \
  --greedy --json > "$WORK/generate.json"
head -c 1500 "$WORK/generate.json"; echo
step "cluster status (layerwire status)"
"$LW" status --config "$WORK/cluster.json"
step "cluster speed: prefill and decode across both servers (layerwire bench --config)"
"$LW" bench --config "$WORK/cluster.json" -p 64 -n 16 --reps 1
step "stopping the layer servers (scripts/cluster.sh down)"
scripts/cluster.sh down "$WORK/cluster.json"
rm -f "$WORK/cluster.json"

printf '\nDemo finished. The model above has random weights: its outputs are meaningless\n'
printf 'numbers that prove the pipeline, not language.\n'
