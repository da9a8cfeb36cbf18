#!/usr/bin/env bash
# The checks to run on a lent GPU machine, in one call (see the device tool's README): the adapters wgpu
# sees, `wgtrain verify` on the GPU, then the bench on the hardware GPU — matmuls (4096³ included), the MLP
# epochs, the CNN both ways (im2col and direct), the workgroup shape the tuner chose for each product — and
# the cache of choices.
# Everything lands in $OUT. Build here first and carry the binary (`wgtrain bench` is the bench); never
# build on the device machine:
#
#   cargo build --release --bin wgtrain
#   mkdir -p .gpu-check && cp target/release/wgtrain .gpu-check/
#   echo /.gpu-check/ >>.git/info/exclude
#   run: carry [".gpu-check", ".gl"], command "bash scripts/gpu-check.sh", timeout_s ~540
#
# `.gl` holds the Vulkan loader's .deb files, as the device README describes; they are unpacked first.
# DEVICE=fallback or cpu runs the same checks on another device (to try the script out here).
# The PyTorch peers run where Python has torch (not on the lent machine: it reaches no package index, and
# torch's wheels are larger than what may travel).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu-check}
BIN=${BIN:-.gpu-check}
DEVICE=${DEVICE:-gpu}
mkdir -p "$OUT"

if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    echo "warning: no Vulkan loader; wgpu will find no Vulkan adapter" >&2
fi
export NODEVICE_SELECT=1 RUST_LOG=${RUST_LOG:-wgtrain=info}
# The tuner keeps its choices here, to be read back with the rest.
export WGTRAIN_CACHE_DIR="$OUT/tuning"

if [ ! -x "$BIN/wgtrain" ]; then
    echo "error: $BIN/wgtrain is missing; build here and carry it (see the top of this script)" >&2
    exit 2
fi

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name ($*)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s"
    tail -n 40 "$OUT/$name.txt"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/nvidia-smi.txt"
step devices 60 "$BIN/wgtrain" devices
step devices-json 60 "$BIN/wgtrain" devices --json
step verify 120 "$BIN/wgtrain" verify --device "$DEVICE"
step bench-mlp 240 "$BIN/wgtrain" bench --device "$DEVICE" --workload mlp
step bench-cnn 240 "$BIN/wgtrain" bench --device "$DEVICE" --workload cnn --conv both
ls -l "$OUT/tuning" 2>/dev/null && cat "$OUT"/tuning/*.tuning 2>/dev/null

# The PyTorch peers, measured in the same sitting, where a Python with torch and the peer scripts exist.
PYTHON=${PYTHON:-python3}
PEERS=${PEERS:-../shared/peers}
if [ -d "$PEERS" ] && "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    step torch-mlp 240 "$PYTHON" "$PEERS/torch_mlp.py"
    step torch-cnn 240 "$PYTHON" "$PEERS/torch_cnn.py"
else
    echo "== PyTorch peers not run: no $PEERS or no torch in $PYTHON"
fi
