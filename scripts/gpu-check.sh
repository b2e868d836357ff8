#!/usr/bin/env bash
# `make gpu-check`: on a machine with an NVIDIA GPU, build the CUDA backend
# (Release), run the CUDA kernel tests, in which a skip is a failure here
# because a GPU is supposed to be present, and print the kernel benchmark table.
# Needs no network (no package install). Exits non-zero with a clear message
# when there is no GPU, nvcc is missing, a test fails or is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${GPU_BUILD:-build-gpu}
JOBS=${JOBS:-$(nproc)}
SHARED=${SHARED:-$(cd .. && pwd)/shared}

fail() { echo "gpu-check: FAILED: $*" >&2; exit 1; }

# Cheap checks first, so a machine without a GPU learns it in a second, not after a build.
if ! ls /dev/nvidia[0-9]* >/dev/null 2>&1 && ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  fail "no NVIDIA GPU on this machine (no /dev/nvidia<N>, nvidia-smi -L finds none); run it where there is one"
fi
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || fail "nvcc not found (set CUDACXX or install the CUDA toolkit)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

echo "gpu-check: configuring $BUILD (Release, CUDA via $NVCC)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
  >"$BUILD.configure.log" 2>&1 || { tail -n 40 "$BUILD.configure.log"; fail "cmake configure"; }
grep -q "CUDA backend ON" "$BUILD.configure.log" || { grep "tandem:" "$BUILD.configure.log"; fail "CUDA backend not enabled"; }

echo "gpu-check: building tandem_tests and bench_cuda with $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS" --target tandem_tests bench_cuda

echo "gpu-check: CUDA kernel tests"
LOG="$BUILD/gpu-check-tests.log"
set +e
TANDEM_SHARED="$SHARED" "$BUILD/tandem_tests" --gtest_filter='Cuda*:Placement*' 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "CUDA tests failed (exit $rc)"
if grep -q '^\[  SKIPPED \]' "$LOG"; then
  grep '^\[  SKIPPED \]\|no CUDA device' "$LOG" | head -n 20
  fail "CUDA tests were skipped on a machine that has a GPU; see the reasons above"
fi

echo
echo "gpu-check: kernel benchmarks"
"$BUILD/bench/bench_cuda" || fail "bench_cuda"
echo "gpu-check: OK"
