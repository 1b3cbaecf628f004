"""Overlap metrics (SPEC §5); ``dsc`` lives in :mod:`rstn_core.metrics` and is re-exported here."""

from __future__ import annotations

from rstn_core.metrics import dsc

__all__ = ["dsc"]
