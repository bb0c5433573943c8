"""The analytics projection: DuckDB event facts, incrementally kept ticket facts, KPI views.

The names below load on first use (PEP 562): a rebuild worker needs only `columns` and
`event_facts`, not DuckDB and the KPI views."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "KPI_NAMES": "kpis",
    "SUMMARY_GROUPS": "kpis",
    "kpi_summary": "kpis",
    "open_readonly": "queries",
    "run_sql": "queries",
    "AnalyticsStore": "store",
}

__all__ = [
    "KPI_NAMES",
    "SUMMARY_GROUPS",
    "AnalyticsStore",
    "kpi_summary",
    "open_readonly",
    "run_sql",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
