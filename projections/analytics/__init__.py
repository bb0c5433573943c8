"""The analytics projection: DuckDB event facts, incrementally kept ticket facts, KPI views."""

from __future__ import annotations

from projections.analytics.kpis import KPI_NAMES, SUMMARY_GROUPS, kpi_summary
from projections.analytics.queries import open_readonly, run_sql
from projections.analytics.store import AnalyticsStore

__all__ = [
    "KPI_NAMES",
    "SUMMARY_GROUPS",
    "AnalyticsStore",
    "kpi_summary",
    "open_readonly",
    "run_sql",
]
