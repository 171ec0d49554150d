#!/usr/bin/env bash
# Run the bundled quick start end to end on this machine: no cluster, no bucket needed.
# Builds a fresh project exactly as the README's quick start does (git submodule + two symlinks), then `make local`.
set -euo pipefail
TOOLBOX="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v git >/dev/null || ! command -v make >/dev/null; then
    apt-get update -q && apt-get install -y -q git make
fi
if [ ! -x "$TOOLBOX/.venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$TOOLBOX/.venv"
fi
"$TOOLBOX/.venv/bin/python" -m pip install -q -e "$TOOLBOX"
export PATH="$TOOLBOX/.venv/bin:$PATH"

WORK="${1:-$(mktemp -d)}/example"
mkdir -p "$WORK/src" "$WORK/data"
cd "$WORK"
git init -q
git -c protocol.file.allow=always submodule add -q "$TOOLBOX" src/toolbox
ln -s src/toolbox/launch.py .
ln -s src/toolbox/Makefile .
cp -r "$TOOLBOX/examples/quickstart/config" "$TOOLBOX/examples/quickstart/src" "$TOOLBOX/examples/quickstart/data" .
echo "Example project in $WORK"
make local
