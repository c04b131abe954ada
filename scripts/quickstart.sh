#!/usr/bin/env bash
# The README's two commands: `bash scripts/quickstart.sh demo` and `bash scripts/quickstart.sh test`.
# Each installs what is missing (system GL libraries, a virtualenv with the CPU build of torch
# first, then the package), then runs the main job or the test suite.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${SARM2_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

usage() { echo "usage: bash scripts/quickstart.sh {demo|test} [extra args]" >&2; exit 2; }
[ $# -ge 1 ] || usage
what=$1; shift

# --- system libraries for headless MuJoCo rendering (EGL, OSMesa fallback) and the browser test
need_pkgs=()
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need_pkgs+=(libegl1)
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need_pkgs+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libOSMesa.so' || need_pkgs+=(libosmesa6)
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so' || need_pkgs+=(libegl-mesa0)
if [ "$what" = test ] && ! command -v chromium >/dev/null 2>&1; then need_pkgs+=(chromium); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "[quickstart] installing system packages: ${need_pkgs[*]}"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "[quickstart] warning: cannot install ${need_pkgs[*]} (no apt-get); rendering may fail" >&2
  fi
fi

# --- python environment: torch's CPU build goes in before anything that depends on torch
stamp="$VENV/.sarm2-install-stamp"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  echo "[quickstart] creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[quickstart] installing python packages (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[test,dev,distributed,robosuite]"
  echo "$want" > "$stamp"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
case "$what" in
  demo)
    exec "$VENV/bin/sarm2" demo "$@"
    ;;
  test)
    echo "[quickstart] ruff";  "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
    echo "[quickstart] mypy";  "$VENV/bin/mypy"
    echo "[quickstart] pytest"
    exec "$VENV/bin/pytest" -n "${SARM2_TEST_WORKERS:-2}" --timeout 900 "$@"
    ;;
  *) usage ;;
esac
