"""Data commands: ``collect`` and ``make-benchmark``."""

from __future__ import annotations
