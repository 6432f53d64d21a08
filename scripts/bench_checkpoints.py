"""Benchmark: write a ~1 MB checkpoint (with its fsyncs) and load + verify it.

    python scripts/bench_checkpoints.py [--runs 30] [--size-mb 1] [--dir DIR]

Prints the median and p90 in milliseconds of each, against the targets (write
20 ms, load 5 ms). The files go to a temporary directory inside ``--dir``
(default: the current directory, so the fsyncs hit the disk the home lives on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from athenad.storage.checkpoints import CheckpointStore  # noqa: E402

WRITE_TARGET_MS = 20.0
LOAD_TARGET_MS = 5.0


def make_conversation(size_bytes: int) -> tuple[dict, list[dict]]:
    """A long agent conversation of about ``size_bytes`` encoded, plus some state."""
    messages = []
    total = 0
    turn = 0
    while total < size_bytes:
        role = "user" if turn % 2 == 0 else "assistant"
        content = f"turn {turn}: " + ("step through the plan, weigh the options; " * 20)
        messages.append({"role": role, "content": content, "tokens": len(content) // 4})
        total += len(content) + 40
        turn += 1
    state = {"plan": [f"service-{i}" for i in range(50)], "iteration": turn, "score": 0.75}
    return state, messages


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()

    state, messages = make_conversation(int(args.size_mb * 1024 * 1024))
    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-", dir=args.dir) as folder:
        store = CheckpointStore(folder)
        store.save("bench", 0, state, messages)  # warm up
        writes, loads = [], []
        size = 0
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            info = store.save("bench", run, state, messages)
            writes.append((time.perf_counter() - started) * 1000)
            size = info.size_bytes
            started = time.perf_counter()
            loaded = store.load_latest("bench", at_most=run)
            loads.append((time.perf_counter() - started) * 1000)
            assert loaded is not None and loaded.iteration == run
            store.prune("bench", keep=3)

    write_ms = statistics.median(writes)
    load_ms = statistics.median(loads)
    megabytes = size / (1024 * 1024)
    print(f"checkpoint size: {megabytes:.2f} MB ({len(messages)} messages), runs: {args.runs}")
    print(
        f"write incl. fsyncs: median {write_ms:.2f} ms, p90 {percentile(writes, 0.9):.2f} ms "
        f"(target {WRITE_TARGET_MS:g} ms: {'met' if write_ms <= WRITE_TARGET_MS else 'MISSED'})"
    )
    print(
        f"load + verify:      median {load_ms:.2f} ms, p90 {percentile(loads, 0.9):.2f} ms "
        f"(target {LOAD_TARGET_MS:g} ms: {'met' if load_ms <= LOAD_TARGET_MS else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
