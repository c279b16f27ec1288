"""Fixtures of the state tests; helpers live in site_contents.py."""

from __future__ import annotations

import sys
from pathlib import Path

# The tests import site_contents (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from site_contents import filled_site

__all__ = ["filled_site"]
