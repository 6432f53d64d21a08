"""Metrics for Prometheus: the figures ``athenactl metrics`` exposes, and their text.

Counters never go down (they are the rows of ``jobs`` plus what ``job_counters`` keeps
of deleted rows and retried outcomes; tokens and cost are the sums of ``job_usage``,
whose rows are never deleted; worker crashes are what the supervisor records in its run
directory); gauges tell how things stand now; duration quantiles cover a recent
window. Rendered by ``prometheus_client``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from athenad.analytics.queries import Source, by_agent_type, by_status, queue_summary, snapshot
from athenad.analytics.usage import usage_totals
from athenad.util.timefmt import utc_now_text

QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))

# Always shown, 0 until one happens, so rate() sees the first crash as an increase:
# the OOM killer's SIGKILL and a non-zero exit are the usual ones.
CRASH_REASONS = ("SIGKILL", "exit")

EVENT_HELP = {
    "submitted": "Jobs submitted, by agent type.",
    "completed": "Jobs that completed, by agent type.",
    "failed": "Jobs that failed after their last attempt, by agent type (again after a retry).",
    "cancelled": "Jobs cancelled, by agent type (again after a retry).",
}


def metrics(source: Source, window_since: str | None, now: str | None = None) -> dict:
    """The figures ``athenactl metrics`` exposes.

    ``counters`` (per agent type and event: count and duration sum) are the rows of
    jobs plus what ``job_counters`` keeps of rows deleted or retried: they never go down.
    ``jobs`` (rows by status) and the oldest pending age are how things stand now;
    duration quantiles cover the window. ``usage`` is tokens and USD per model, all time.
    """
    now = now or utc_now_text()
    with snapshot(source) as reader:
        queue = queue_summary(reader, now)
        return {
            "jobs": by_status(reader, None),
            "oldest_pending_age_s": queue["oldest_pending_age_s"],
            "counters": reader.rows("analytics_job_counters"),
            "quantiles": {row["agent_type"]: row for row in by_agent_type(reader, window_since)},
            "usage": usage_totals(reader, None, "model"),
        }


def _number(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def _gauges(figures: dict[str, Any], extra_gauges: dict[str, tuple]) -> Iterator[Metric]:
    for name, (help_text, value) in extra_gauges.items():
        yield GaugeMetricFamily(name, help_text, value=_number(value))
    jobs = GaugeMetricFamily("athena_jobs", "Jobs in the queue by status.", labels=["status"])
    for status, count in figures["jobs"].items():
        jobs.add_metric([status], count)
    yield jobs
    yield GaugeMetricFamily(
        "athena_oldest_pending_age_seconds",
        "Age of the oldest pending job.",
        value=_number(figures["oldest_pending_age_s"]),
    )


def _counted(figures: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{agent_type: {event: row}}`` from the counter rows."""
    counted: dict[str, dict[str, dict[str, Any]]] = {}
    for row in figures["counters"]:
        counted.setdefault(row["agent_type"], {})[row["event"]] = row
    return counted


def _counters(counted: dict[str, dict[str, dict[str, Any]]]) -> Iterator[Metric]:
    """One counter per event; every agent type seen gets every event, 0 included, so
    ``rate()`` sees a job type's first failure as an increase."""
    for event, help_text in EVENT_HELP.items():
        family = CounterMetricFamily(f"athena_jobs_{event}", help_text, labels=["agent_type"])
        for agent_type, events in sorted(counted.items()):
            family.add_metric([agent_type], events.get(event, {}).get("count", 0))
        yield family


def _duration_summary(figures: dict[str, Any], counted: dict[str, dict]) -> Metric:
    """Completed jobs' durations: quantiles over the window, count and sum for all time."""
    summary = Metric(
        "athena_job_duration_ms",
        "Duration of completed jobs in milliseconds; quantiles over the recent window.",
        "summary",
    )
    quantiles = figures["quantiles"]
    for agent_type in sorted(set(counted) | set(quantiles)):
        window = quantiles.get(agent_type, {})
        for quantile, key in QUANTILES:
            labels = {"agent_type": agent_type, "quantile": quantile}
            summary.add_sample("athena_job_duration_ms", labels, _number(window.get(key)))
        completed = counted.get(agent_type, {}).get("completed", {})
        labels = {"agent_type": agent_type}
        summary.add_sample(
            "athena_job_duration_ms_sum", labels, completed.get("duration_ms_sum", 0)
        )
        summary.add_sample("athena_job_duration_ms_count", labels, completed.get("count", 0))
    return summary


def _worker_crashes(totals: dict[str, int]) -> Metric:
    family = CounterMetricFamily(
        "athena_worker_crashes",
        "Workers that died unasked while the daemon served, by signal name or 'exit'.",
        labels=["reason"],
    )
    for reason in sorted(set(CRASH_REASONS) | set(totals)):
        family.add_metric([reason], totals.get(reason, 0))
    return family


def _usage(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    """Tokens by model and direction, and USD by model: sums of usage rows, all time."""
    tokens = CounterMetricFamily(
        "athena_tokens",
        "Model tokens recorded by jobs, by model and direction (in: prompt, out: completion).",
        labels=["model", "direction"],
    )
    cost = CounterMetricFamily(
        "athena_cost_usd", "USD spent on model calls by jobs, by model.", labels=["model"]
    )
    for row in sorted(rows, key=lambda row: row["name"]):
        tokens.add_metric([row["name"], "in"], row["tokens_in"])
        tokens.add_metric([row["name"], "out"], row["tokens_out"])
        cost.add_metric([row["name"]], row["cost_usd"])
    yield tokens
    yield cost


class _Families:
    """A collector of metric families computed beforehand, for one render."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def prometheus_text(
    figures: dict[str, Any],
    extra_gauges: dict[str, tuple] | None = None,
    worker_crashes: dict[str, int] | None = None,
) -> str:
    """Render :func:`metrics` in the Prometheus text exposition format.

    ``extra_gauges`` maps a metric name to ``(help, value)``, e.g. daemon liveness;
    ``worker_crashes`` are the supervisor's crash totals by reason.
    """
    counted = _counted(figures)
    families = [
        *_gauges(figures, extra_gauges or {}),
        *_counters(counted),
        _duration_summary(figures, counted),
        *_usage(figures.get("usage", [])),
        _worker_crashes(worker_crashes or {}),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode("utf-8")
