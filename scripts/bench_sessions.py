#!/usr/bin/env python3
"""Benchmark the session store with 10,000 sessions and print the figures.

    python scripts/bench_sessions.py [--sessions 10000] [--messages 10000] [--dir DIR]

Targets: resume_most_recent_session <= 1 ms, listing one branch <= 50 ms, and the
10,000th append of a session as fast as the first (< 1 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from athenad.storage.sessions import SessionManager  # noqa: E402
from athenad.storage.sessions.files import Header, encode_line, make_message  # noqa: E402
from athenad.util.timefmt import utc_now_text  # noqa: E402

BRANCHES = [f"feature-{n}" for n in range(19)] + ["main"]


def populate(directory: Path, count: int) -> None:
    """Write session files directly (no fsync per file) to set up quickly."""
    directory.mkdir(parents=True, exist_ok=True)
    now = utc_now_text()
    for n in range(count):
        session_id = f"session-bench{n:08d}"
        header = Header(
            format=1,
            id=session_id,
            name=f"bench {n}",
            tags=["bench"],
            git_branch=BRANCHES[n % len(BRANCHES)],
            cwd="/src",
            created_at=now,
        )
        lines = [encode_line(header)]
        lines += [encode_line(make_message(i, "user", f"message {i}")) for i in (1, 2, 3)]
        (directory / f"{session_id}.jsonl").write_bytes(b"".join(lines))


def timed(func, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(name: str, samples: list[float], target: float | None = None) -> None:
    samples = sorted(samples)
    median = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    verdict = "" if target is None else ("  ok" if median <= target else "  OVER TARGET")
    goal = f"  (target {target} ms)" if target is not None else ""
    print(f"{name:<52} median {median:8.3f} ms  p99 {p99:8.3f} ms{goal}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        sessions_dir = Path(work) / "sessions"
        start = time.perf_counter()
        populate(sessions_dir, args.sessions)
        print(f"wrote {args.sessions} session files in {time.perf_counter() - start:.1f} s")

        cold = SessionManager(sessions_dir)
        summary("first load, no index.json (build + write)", timed(cold.index.refresh, 1))
        warm = SessionManager(sessions_dir)
        summary("first load, index.json present (validate all)", timed(warm.index.refresh, 1))
        summary(
            "SessionManager() construction",
            timed(lambda: SessionManager(sessions_dir), 200),
        )

        manager = SessionManager(sessions_dir)
        manager.resume_most_recent_session()
        summary(
            "resume_most_recent_session()",
            timed(manager.resume_most_recent_session, 2000),
            1.0,
        )
        summary(
            "resume_most_recent_session('main')",
            timed(lambda: manager.resume_most_recent_session("main"), 2000),
            1.0,
        )
        other = SessionManager(sessions_dir)
        counter = iter(range(10**9))

        def resume_after_foreign_append() -> None:
            other.add_message(f"session-bench{next(counter) % args.sessions:08d}", "user", "x")
            assert manager.resume_most_recent_session("main") is not None

        summary(
            "append elsewhere + resume_most_recent_session('main')",
            timed(resume_after_foreign_append, 500),
            1.0,
        )
        per_branch = sum(1 for n in range(args.sessions) if BRANCHES[n % len(BRANCHES)] == "main")
        summary(
            f"list_sessions('main') ({per_branch} sessions)",
            timed(lambda: manager.list_sessions("main"), 50),
            50.0,
        )
        summary(
            f"list_sessions() (all {args.sessions})",
            timed(manager.list_sessions, 20),
        )

        session_id = manager.create_session("append bench", git_branch="main")
        samples = timed(lambda: manager.add_message(session_id, "user", "hello " * 20), 1)
        samples += timed(
            lambda: manager.add_message(session_id, "assistant", "reply " * 40),
            args.messages - 1,
        )
        summary("append, messages 1-100", samples[:100], 1.0)
        summary(f"append, messages {args.messages - 99}-{args.messages}", samples[-100:], 1.0)
        summary(
            f"get_messages() of {args.messages} messages",
            timed(lambda: manager.get_messages(session_id), 5),
        )


if __name__ == "__main__":
    main()
