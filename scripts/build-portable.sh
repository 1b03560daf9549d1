#!/usr/bin/env bash
# Builds the GPU binaries for machines that lack our Debian packages: fragment_tool,
# layerwire, the CUDA test suite (lw_cuda_tests) and layer_server when that target exists,
# with every non-CUDA dependency linked statically (-DLW_PORTABLE=ON: capnp/kj, zstd,
# xxhash, spdlog/fmt header-only, libstdc++/libgcc) and cudart static. cuBLAS stays a shared
# library (its static archive is hundreds of MiB): the target needs libcublas.so.13 and
# libcublasLt.so.13, which any CUDA 13 toolkit or the nvidia-cublas wheel provides.
#
# Output: build-portable/ (the build) and .portable/bin/ (stripped copies of the binaries,
# small enough to travel: copy that folder to the GPU machine and run from there).
# Usage: scripts/build-portable.sh   Environment: BUILD_DIR (build-portable), JOBS (nproc),
# LW_CUDA_ARCHS (90), OUT_DIR (.portable/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-portable}
OUT_DIR=${OUT_DIR:-.portable/bin}
JOBS=${JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLW_ENABLE_CUDA=ON -DLW_PORTABLE=ON \
  -DLW_CUDA_ARCHS="${LW_CUDA_ARCHS:-90}" "${launcher[@]}" >/dev/null
if ! grep -q 'CMAKE_CUDA_COMPILER:.*nvcc' "$BUILD_DIR/CMakeCache.txt"; then
  echo "build-portable: nvcc was not found; the portable build is for GPU binaries" >&2
  exit 2
fi

targets=(fragment_tool lw_cuda_tests layerwire)
all_targets=$(cmake --build "$BUILD_DIR" --target help)
if grep -q '^\.\.\. layer_server$' <<<"$all_targets"; then
  targets+=(layer_server)
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"

mkdir -p "$OUT_DIR"
for t in "${targets[@]}"; do
  bin=$(find "$BUILD_DIR" -type f -name "$t" -perm -u+x | head -n 1)
  [[ -n "$bin" ]] || { echo "build-portable: $t was not built" >&2; exit 1; }
  cp "$bin" "$OUT_DIR/$t"
  strip --strip-unneeded "$OUT_DIR/$t"
done

# What is still dynamic: glibc, libgcc_s/libstdc++/libz (on every Linux), the CUDA driver
# (loaded at run time) and cuBLAS are expected. Anything else (Debian's cpp-httplib ships
# only a shared library, used by the layer server) is bundled with its own dependencies
# into $OUT_DIR/../lib; put that folder LAST on LD_LIBRARY_PATH (scripts/gpu-check.sh does).
LIB_DIR="$OUT_DIR/../lib"
mkdir -p "$LIB_DIR"
system_lib() {
  case "$1" in
    linux-vdso* | ld-linux* | libc.so* | libm.so* | libpthread* | libdl.so* | librt.so* | \
      libgcc_s* | libstdc++* | libz.so* | libcublas* | libcuda.so*) return 0 ;;
  esac
  return 1
}
bundle() {  # bundle FILE: copies FILE's non-system shared libraries (recursively)
  ldd "$1" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    system_lib "$name" && continue
    [[ -e "$LIB_DIR/$name" ]] && continue
    cp -L "$path" "$LIB_DIR/$name"
    echo "bundled $name (from $path)"
    bundle "$path"
  done
}
for t in "${targets[@]}"; do bundle "$OUT_DIR/$t"; done
echo "portable binaries in $OUT_DIR (libraries in $LIB_DIR):"
du -sh "$OUT_DIR"/* "$LIB_DIR"
