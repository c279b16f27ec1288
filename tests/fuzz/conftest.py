"""Fixtures of the fuzz tests: the fuzzers and the receiver tests' raw peer are importable."""

from __future__ import annotations

import sys
from pathlib import Path

# pytest's importlib mode puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "receiver"))
