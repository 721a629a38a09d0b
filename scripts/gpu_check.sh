#!/usr/bin/env bash
# segtool on an NVIDIA GPU: install the GPU extra, then scripts/gpu_check.py: CUDA masks against the
# CPU's exact ones, in-memory and folder throughput against onnxruntime alone and the CPU engine,
# as markdown tables for BENCHMARKS.md (issue 13).
#
#   scripts/gpu_check.sh [WHEELS_DIR] [-- gpu_check.py options]
#   scripts/gpu_check.sh none -- --device cpu --images 12 --seconds 0.3   # the script itself, no GPU
#
# Run from anywhere on a machine with an NVIDIA driver and Python 3.12. WHEELS_DIR (default .whl)
# holds onnxruntime_gpu-*.whl, or its pieces as made by `split -b 45M` under WHEELS_DIR/parts
# (NAME.whl.part-aa, -ab, ...; checked against WHEELS_DIR/parts/SHA256SUMS when present), or the
# two pieces of scripts/gpu_pack.py (ortgpu.part-aa, -ab and SHA256: one GPU generation's kernels,
# 66 MB, two device calls instead of six), and any other wheel the machine lacks. They are
# installed with --no-deps into a private folder put first on PYTHONPATH, so the machine's own
# (CPU) onnxruntime stays as it is. The CUDA and cuDNN libraries come from the nvidia-* wheels
# already installed (onnxruntime.preload_dlls() loads them; LD_LIBRARY_PATH is the fallback).
# The hair model is used when SEGTOOL_MODELS_DIR holds it (`segtool models install hair`).
# The report goes to stdout and, when $OUT is set (the device tool's output folder), $OUT/gpu_check.md.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=${1:-.whl}
[ "$#" -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
SITE=${SEGTOOL_GPU_SITE:-/tmp/segtool-gpu-site}
PYTHON=${PYTHON:-python3}

assemble() {  # pieces -> the wheel, under its own name (pip needs it)
  local first name
  first=$(ls "$WHEELS"/parts/*.whl.part-aa 2>/dev/null | head -n 1) || true
  [ -n "$first" ] || return 0
  name=$(basename "$first" .part-aa)
  cat "$WHEELS"/parts/"$name".part-* > "$WHEELS/$name"
  if [ -f "$WHEELS/parts/SHA256SUMS" ]; then
    (cd "$WHEELS" && sed "s#  .*/#  #" parts/SHA256SUMS | sha256sum -c --quiet -) || { echo "gpu_check: $name is damaged" >&2; exit 1; }
  fi
  echo "gpu_check: assembled $name" >&2
}

unpack_tree() {  # ortgpu.part-* from scripts/gpu_pack.py -> the installed tree in $SITE
  ls "$WHEELS"/ortgpu.part-aa >/dev/null 2>&1 || return 0
  cat "$WHEELS"/ortgpu.part-* > "$WHEELS/ortgpu.tar.xz"
  (cd "$WHEELS" && sha256sum -c --quiet SHA256) || { echo "gpu_check: ortgpu.tar.xz is damaged" >&2; exit 1; }
  mkdir -p "$SITE"
  "$PYTHON" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$WHEELS/ortgpu.tar.xz" "$SITE"
  echo "gpu_check: unpacked ortgpu.tar.xz into $SITE" >&2
}

nvidia_lib_dirs() {  # lib folders of the nvidia-* wheels, for LD_LIBRARY_PATH
  "$PYTHON" - <<'EOF'
import pathlib
try:
    import nvidia
except ImportError:
    raise SystemExit
print(":".join(str(p) for root in nvidia.__path__ for p in sorted(pathlib.Path(root).glob("*/lib"))))
EOF
}

if [ "$WHEELS" = none ]; then  # the installed onnxruntime as it is (a CPU check of the script)
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  assemble
  unpack_tree
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then  # onnxruntime-gpu, and any package the machine lacks
    started=$(date +%s)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
    echo "gpu_check: installed $(ls "$WHEELS"/*.whl | xargs -n1 basename | tr '\n' ' ')in $(( $(date +%s) - started )) s" >&2
  fi
  [ -d "$SITE/onnxruntime" ] || { echo "gpu_check: no onnxruntime-gpu wheel or pieces in $WHEELS" >&2; exit 2; }
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# The device graph is built with the onnx package; without it segtool keeps the exact path on CUDA.
"$PYTHON" -c "import onnx" 2>/dev/null || echo "gpu_check: no onnx package here: CUDA runs the exact path (pip install onnx)" >&2
extra=$(nvidia_lib_dirs)
export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
"$PYTHON" -c "from segtool.cli import main; main(['info'])"
report=${OUT:+$OUT/gpu_check.md}
"$PYTHON" scripts/gpu_check.py ${report:+--out "$report"} "$@"
