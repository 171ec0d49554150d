"""Shared fixtures: the repository root on sys.path, and the server fixtures of each area."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.s3_fixtures", "tests.kube_fixtures"]
