#!/usr/bin/env bash
# One benchmark sitting: wgtrain's bench and its peers on the same machine, back to back, so that every
# figure of docs/performance.md comes from one run of this script (these machines drift by tens of percent
# between sittings). Writes every JSON line to target/sitting/sitting.jsonl and prints a summary table.
#
#   scripts/sitting.sh [ROUNDS]          # ROUNDS (default 2) of the CPU comparisons, alternated
#
# Needs a release build (`cargo build --release`). Optional peers, each skipped with a note when absent:
#   PEERS_PYTHON   a Python with torch, numpy (and jax) installed  [default: python3]
#   PEERS_DIR      the peer scripts                                [default: ../shared/peers]
#   BURN_BIN_DIR   built burn_wgpu and burn_cnn_wgpu (../shared/peers/README.md says how)
#   SKIP_CNN_LAVAPIPE=1   leave out the CNN on lavapipe (minutes an epoch set)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
wgtrain=target/release/wgtrain
peers=${PEERS_DIR:-../shared/peers}
python=${PEERS_PYTHON:-python3}
out=target/sitting
mkdir -p "$out"
log="$out/sitting.jsonl"
: >"$log"
export NODEVICE_SELECT=1
export MNIST_DIR="$PWD/data"

[ -x "$wgtrain" ] || { echo "error: $wgtrain missing; run cargo build --release first" >&2; exit 1; }

note() { echo "# $*" | tee -a "$log"; }
# Keeps the JSON lines of a command (tagged with the round), shows its stderr.
record() {
    local round=$1
    shift
    "$@" | grep '^{' | sed "s/^{/{\"round\":$round,/" | tee -a "$log" | cut -c1-160
}

note "date $(date -u +%Y-%m-%dT%H:%MZ)"
note "machine $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
note "wgtrain $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes')"
note "mesa $(dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null || echo unknown)"
have_torch=0
if "$python" -c "import torch" 2>/dev/null; then
    have_torch=1
    note "torch $("$python" -c 'import torch; print(torch.__version__)')"
else
    note "no torch for $python: PyTorch peers skipped"
fi
have_jax=0
if "$python" -c "import jax" 2>/dev/null; then
    have_jax=1
    note "jax $("$python" -c 'import jax; print(jax.__version__)')"
fi

# The CPU comparisons, alternated round by round.
for round in $(seq 1 "$rounds"); do
    record "$round" "$wgtrain" bench --device cpu --workload mlp
    if [ $have_torch = 1 ]; then record "$round" "$python" "$peers/torch_mlp.py"; fi
    if [ $have_jax = 1 ]; then record "$round" "$python" "$peers/jax_mlp.py"; fi
    record "$round" "$wgtrain" bench --device cpu --workload cnn
    if [ $have_torch = 1 ]; then record "$round" "$python" "$peers/torch_cnn.py"; fi
done

# lavapipe (Vulkan), the GL backend on the same llvmpipe, and Burn's wgpu backend on lavapipe.
record 1 "$wgtrain" bench --device fallback --workload mlp
record 1 "$wgtrain" bench --device gl --workload mlp
burn_line() { # RESULT peer=… backend=… config=… median_epoch_ms=… → one JSON line
    sed -n 's/^RESULT peer=\([^ ]*\) backend=\([^ ]*\) config=\([^ ]*\) median_epoch_ms=\([^ ]*\).*/{"kind":"epoch","peer":"\1","device":"\2","layers":"\3","median_ms":\4}/p'
}
if [ -n "${BURN_BIN_DIR:-}" ] && [ -x "$BURN_BIN_DIR/burn_wgpu" ]; then
    note "burn $BURN_BIN_DIR"
    "$BURN_BIN_DIR/burn_wgpu" | burn_line | sed 's/^{/{"round":1,/' | tee -a "$log"
else
    note "no BURN_BIN_DIR/burn_wgpu: Burn skipped"
fi
if [ "${SKIP_CNN_LAVAPIPE:-0}" != 1 ]; then
    record 1 "$wgtrain" bench --device fallback --workload cnn
    if [ -n "${BURN_BIN_DIR:-}" ] && [ -x "$BURN_BIN_DIR/burn_cnn_wgpu" ]; then
        "$BURN_BIN_DIR/burn_cnn_wgpu" | burn_line | sed 's/^{/{"round":1,/' | tee -a "$log"
    fi
fi

"$python" - "$log" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("kind") != "epoch":
        continue
    who = r.get("peer") or "wgtrain"
    where = r.get("device", "?")
    conv = r.get("conv")
    key = (r["layers"], f"{who} {where}" + (f" ({conv})" if conv else ""))
    rows.setdefault(key, []).append(r["median_ms"])
print("\n# median epoch ms per run (each the median of 3 epochs after a warm-up)")
for (layers, who), ms in sorted(rows.items()):
    print(f"# {layers:<24} {who:<34} {', '.join(f'{m:.1f}' for m in ms)}")
EOF
echo "# every line: $log"
