"""scripts/bench_peers.py: the report and the mixed run's shape, on fixed figures (no
processes; the benchmark itself is not run in CI)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def bench_peers() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("bench_peers")
    finally:
        sys.path.remove(str(SCRIPTS))


RESULTS = {
    "machine": {
        "cpus": 2,
        "platform": "Linux-x86_64",
        "python": "3.11.7",
        "sqlite": "3.45.0",
        "redis": "7.0.15",
    },
    "sizes": {"jobs": 10_000, "samples": 500, "workers": 2, "small": 10_000, "big": 1_000_000},
    "peers": {
        "athena-sqlite": {
            "version": "athena 0.1.0",
            "drain_jobs_per_s": 12_345.6,
            "mixed_jobs_per_s": 9_876.5,
            "start_p50_ms": 0.44,
            "start_p99_ms": 3.21,
            "claim": {"ratio": 1.034, "big_us": 62.0, "small_us": 60.0},
            "supervisor_rss_mib": 34.42,
            "worker_rss_mib": 35.97,
            "notes": ["Athena on SQLite"],
        },
        "huey-redis": {
            "version": "huey 3.5.4",
            "drain_jobs_per_s": 3_920.0,
            "start_p50_ms": 1.04,
            "start_p99_ms": 6.66,
            "supervisor_rss_mib": 41.9,
            "worker_rss_mib": 33.1,
        },
        "rq": {
            "version": "rq 2.12.0",
            "drain_jobs_per_s": 151.0,
            "mixed_jobs_per_s": 118.0,
            "start_p50_ms": 10.2,
            "start_p99_ms": 16.2,
            "supervisor_rss_mib": None,
            "worker_rss_mib": 35.7,
        },
        "celery": {"error": "celery[redis]>=5.3,<6 could not be installed"},
    },
}


def test_one_row_per_peer_with_its_figures(bench_peers: ModuleType) -> None:
    lines = bench_peers.report(RESULTS).splitlines()
    assert lines[0].startswith("| peer | version | drain jobs/s | mixed jobs/s (10% fan-in) |")
    assert "claim cost 1,000,000 / 10,000 finished" in lines[0]
    assert lines[2] == (
        "| athena-sqlite | athena 0.1.0 | 12,346 | 9,876 | 0.4 / 3.2 "
        "| 1.03x (62 / 60 us) | 34.4 | 36.0 |"
    )
    # No fan-in, no claim figure: said so, never a number.
    assert lines[3] == (
        "| huey-redis | huey 3.5.4 | 3,920 | n/a | 1.0 / 6.7 | not measured | 41.9 | 33.1 |"
    )
    # No supervisor process: n/a.
    assert lines[4] == "| rq | rq 2.12.0 | 151 | 118 | 10.2 / 16.2 | not measured | n/a | 35.7 |"
    # A peer that could not run says why, in its own row.
    failed = "| celery | failed: celery[redis]>=5.3,<6 could not be installed |"
    assert lines[5] == failed + " | | | | | |"


def test_the_machine_and_the_notes_follow_the_table(bench_peers: ModuleType) -> None:
    text = bench_peers.report(RESULTS)
    assert "Machine: 2 CPUs, Linux-x86_64, Python 3.11.7, SQLite 3.45.0, Redis 7.0.15." in text
    assert "2 worker processes per peer; 10,000 jobs per drain" in text
    assert text.endswith("- athena-sqlite: Athena on SQLite")


def test_a_mixed_run_has_one_dependent_in_ten(bench_peers: ModuleType) -> None:
    assert bench_peers.mixed_shape(10_000) == (0, 1_000)
    assert bench_peers.mixed_shape(1_005) == (5, 100)
    specs = bench_peers.mixed_specs(25)
    assert len(specs) == 25
    dependents = [(i, spec["after"]) for i, spec in enumerate(specs) if "after" in spec]
    assert dependents == [(14, list(range(5, 14))), (24, list(range(15, 24)))]
