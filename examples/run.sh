#!/usr/bin/env bash
# Run the bundled quick start end to end on this machine: no cluster, no bucket needed.
# Builds a fresh project as README.md's Install and Quick start do (git submodule, two symlinks, a venv,
# `make setup`), with the files of examples/quickstart, then runs `make local`.
# Usage: bash examples/run.sh [FOLDER]      (default: a new temporary folder; PYTHON=python3.12 picks Python)
set -euo pipefail
TOOLBOX="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v git >/dev/null || ! command -v make >/dev/null; then
    apt-get update -q && apt-get install -y -q git make
fi

WORK="${1:-$(mktemp -d)}/example"
mkdir -p "$WORK"
cd "$WORK"
git init -q
git -c protocol.file.allow=always submodule add -q "$TOOLBOX" src/toolbox
ln -s src/toolbox/launch.py .
ln -s src/toolbox/Makefile .
"${PYTHON:-python3}" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
make setup
cp -r "$TOOLBOX/examples/quickstart/config" "$TOOLBOX/examples/quickstart/src" "$TOOLBOX/examples/quickstart/data" .
echo "Example project in $WORK"
make local
