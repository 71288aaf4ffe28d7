#!/usr/bin/env bash
# Set up hrlxf in ./.venv on a fresh machine (idempotent: a second run is quick).
#   bash scripts/setup.sh         runtime only
#   bash scripts/setup.sh --dev   plus pytest, ruff, hypothesis, playwright, and Debian's chromium
#                                 (apt, when /usr/bin/chromium is missing) for the browser test
# torch is installed first, pinned to 2.13.0 (the CPU wheel); an unpinned torch would pull a
# multi-GB CUDA build.
# scml and scml-agents are installed without their declared dependencies (NO_DEPS): scml-agents
# declares tensorflow, mip/cbcbox, xgboost, stable-baselines3 and tensorboard, scml declares
# jupyter and papermill, and none of them is imported by our code or by any std agent of the
# roster (tests/test_install.py). What they do import is in pyproject.toml's dependencies.
# Every version is pinned by requirements/constraints.txt (a `pip freeze` of this environment),
# so a fresh machine gets the versions this was tested with. The environment is ~2 GB.
# HRLXF_VENV names another folder for the environment (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${HRLXF_VENV:-.venv}"
CONSTRAINTS=requirements/constraints.txt
NO_DEPS=(scml==0.8.4 scml-agents==0.5.2)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# --no-compile: no .pyc for the ~400 MB of modules nothing imports (torch's and sympy's tests,
# tooling); Python compiles what is imported on first use.
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile)
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  "${PIP[@]}" torch==2.13.0
fi
"${PIP[@]}" --no-deps "${NO_DEPS[@]}"
echo "hrlxf: scml and scml-agents are installed without their declared dependencies; pip lists those below as"
echo "       'not installed': they are not needed (scripts/setup.sh, tests/test_install.py)"
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" -c "$CONSTRAINTS" -e ".[dev]"
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
  "${PIP[@]}" -c "$CONSTRAINTS" -e .
fi
echo "hrlxf: environment ready in $VENV ($(du -sh "$VENV" | cut -f1))"
