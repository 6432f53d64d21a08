"""The supervisor's account of its worker slots, for ``athenad status`` and ``metrics``.

The supervisor rewrites ``.athena/run/slots.json`` whenever a slot's worker starts,
becomes ready, exits or crashes. Its times are wall-clock epochs, so another process
can judge them with its own clock. The crash totals carry over from one daemon of the
home to the next, so ``athena_worker_crashes_total`` only goes down if the file is lost.
"""

from __future__ import annotations

from typing import Any

import msgspec

from athenad.daemon.respawn import SlotBackoff
from athenad.paths import Home
from athenad.util.fsutil import atomic_write

SLOTS_FILE = "slots.json"


class SlotsRecord(msgspec.Struct):
    pid: int  # the supervisor that wrote it
    slots: dict[int, SlotBackoff] = {}
    workers: dict[int, int] = {}  # worker pid -> its slot
    crashes_total: dict[str, int] = {}  # by reason: a signal's name, or "exit"


def slots_path(home: Home):
    return home.run_dir / SLOTS_FILE


def write_slots(home: Home, record: SlotsRecord) -> None:
    atomic_write(slots_path(home), msgspec.json.encode(record), durable=False)


def read_slots(home: Home) -> SlotsRecord | None:
    try:
        return msgspec.json.decode(slots_path(home).read_bytes(), type=SlotsRecord)
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def crash_totals(home: Home) -> dict[str, int]:
    """Worker crashes by reason, as the home's daemons counted them."""
    record = read_slots(home)
    return dict(record.crashes_total) if record else {}


def slot_report(record: SlotsRecord, live_pids: set[int], now: float) -> list[dict[str, Any]]:
    """Per slot: crashes in the last minute, the current backoff, and (when the slot has
    no live worker) the seconds until its next one."""
    held = {slot for pid, slot in record.workers.items() if pid in live_pids}
    report = []
    for slot, backoff in sorted(record.slots.items()):
        report.append(
            {
                "slot": slot,
                "crashes_last_minute": len(backoff.recent_crashes(now)),
                "respawn_backoff_s": round(backoff.backoff_s(now), 3),
                "respawn_in_s": None if slot in held else round(backoff.wait_s(now), 3),
            }
        )
    return report
