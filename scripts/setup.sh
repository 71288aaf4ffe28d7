#!/usr/bin/env bash
# Set up hrlxf in ./.venv on a fresh machine (idempotent: a second run is quick).
#   bash scripts/setup.sh         runtime only
#   bash scripts/setup.sh --dev   plus pytest, ruff, hypothesis, playwright, and Debian's chromium
#                                 (apt, when /usr/bin/chromium is missing) for the browser test
# torch is installed first, pinned to 2.13.0 (the CPU wheel); an unpinned torch would pull a
# multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  "${PIP[@]}" torch==2.13.0
fi
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" -e ".[dev]"
  # The browser test drives Debian's Chromium through the playwright package (which never
  # downloads a browser). Install it with apt when it is missing and apt can be used.
  if [ ! -x "${HRLXF_CHROMIUM:-/usr/bin/chromium}" ] && command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
    echo "hrlxf: installing Debian's chromium for the browser test (apt-get)"
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "hrlxf: could not install chromium; the browser test will be skipped (failed under CI)"
  fi
else
  "${PIP[@]}" -e .
fi
echo "hrlxf: environment ready in .venv"
