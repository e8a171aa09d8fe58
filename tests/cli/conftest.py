"""Fixtures of the CLI tests (shared helpers live in train_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # train_helpers.py (pytest --import-mode=importlib)
