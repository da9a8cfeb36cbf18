#!/usr/bin/env bash
# Runs wgtrain's whole test suite on a fresh Debian/Ubuntu machine.
# When the Vulkan loader or Mesa's lavapipe is missing and we are root with apt-get, installs them first, so
# the GPU tests run on the software adapter. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan() {
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' &&
        ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}

if ! have_vulkan; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing the Vulkan loader and lavapipe (libvulkan1, mesa-vulkan-drivers)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers >/dev/null
    else
        echo "warning: no Vulkan loader or lavapipe, and not root with apt-get: GPU tests will skip" \
            "(and fail under CI=true). Install them with: apt-get install libvulkan1 mesa-vulkan-drivers" >&2
    fi
fi

# wgpu's GL backend on Mesa's llvmpipe through EGL, without a display (`wgtrain verify --device gl` in
# .ci/run): the EGL loader, Mesa's EGL vendor and its DRI drivers.
have_gl() {
    ldconfig -p 2>/dev/null | grep -q 'libEGL\.so\.1' &&
        ls /usr/share/glvnd/egl_vendor.d/*mesa*.json >/dev/null 2>&1
}
if ! have_gl; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing EGL and Mesa's GL drivers for the GL backend (libegl1 libegl-mesa0 libgl1-mesa-dri)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
    else
        echo "warning: no EGL or Mesa GL driver: \`wgtrain verify --device gl\` will find no adapter." \
            "Install them with: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri" >&2
    fi
fi

# onnx and ONNX Runtime for the export tests (tests/onnx.rs), from PyPI into a venv under target/; the
# tests find its Python through WGTRAIN_ONNX_PYTHON (without one they say SKIPPED, and fail under CI=true).
onnx_venv=target/onnx-venv
onnx_ready() { "$1" -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; }
if [ -z "${WGTRAIN_ONNX_PYTHON:-}" ]; then
    if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1 &&
        [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Python's venv module (python3-venv) for the ONNX Runtime tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
    fi
    if ! onnx_ready "$onnx_venv/bin/python"; then
        echo "installing onnx and onnxruntime into $onnx_venv"
        mkdir -p target
        python3 -m venv "$onnx_venv" &&
            "$onnx_venv/bin/pip" install -q --disable-pip-version-check "onnx>=1.14" "onnxruntime>=1.16" numpy ||
            echo "warning: could not install onnx and onnxruntime; the ONNX Runtime checks will skip (and fail under CI=true)" >&2
    fi
    if onnx_ready "$onnx_venv/bin/python"; then
        export WGTRAIN_ONNX_PYTHON="$PWD/$onnx_venv/bin/python"
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi

# Mesa's device-select layer probes for a Wayland/X11 display and prints "XDG_RUNTIME_DIR is invalid" on
# headless machines; there is nothing for it to select here.
export NODEVICE_SELECT=1
# Release mode: lavapipe and wgpu's validation are slow in debug builds.
cargo test --release "$@"

# The `mpi` feature's tests run under mpirun with Open MPI; its bindings are generated with libclang.
# Skipped when extra arguments narrow the run (scripts/test.sh --test NAME), unless they name tests/mpi.rs.
have_mpi() { command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 &&
    ldconfig -p 2>/dev/null | grep -q 'libclang'; }
if [ "$#" -eq 0 ] || [ "$*" = "--test mpi" ]; then
    if ! have_mpi && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Open MPI and libclang for the mpi feature's tests (openmpi-bin libopenmpi-dev libclang-dev)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev >/dev/null
    fi
    if have_mpi; then
        cargo test --release --features mpi --test mpi
    elif [ "${CI:-}" = true ]; then
        echo "error: CI=true but Open MPI or libclang is missing, so the mpi feature's tests cannot run" >&2
        exit 1
    else
        echo "SKIPPED: the mpi feature's tests (no Open MPI or libclang; apt-get install openmpi-bin libopenmpi-dev libclang-dev)" >&2
    fi
fi
