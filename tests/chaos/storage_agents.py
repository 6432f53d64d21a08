"""The agents of the storage-fault tests; copied beside the scratch home's athena.toml.

``saver`` saves a checkpoint every 0.1 s and notes, in a ledger outside the home (the
home's disk is the one being filled), what each save answered, until a ``stop`` file
appears in the ledger folder.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def note(folder: str, **fields: Any) -> None:
    line = json.dumps({"t": time.time(), "pid": os.getpid(), **fields}) + "\n"
    fd = os.open(os.path.join(folder, "ledger.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def saver(ctx: Any) -> int:
    folder = ctx.payload["ledger"]
    i = ctx.checkpoint.iteration if ctx.checkpoint is not None else 0
    deadline = time.monotonic() + ctx.payload.get("seconds", 60)
    while time.monotonic() < deadline and not os.path.exists(os.path.join(folder, "stop")):
        i += 1
        try:
            # Bigger than a page, so a save needs new space even on a nearly full disk.
            saved = ctx.save_checkpoint(i, state={"i": i, "pad": "x" * 6000})
            note(folder, i=i, saved=bool(saved))
        except Exception as exc:
            note(folder, i=i, error=f"{type(exc).__name__}: {exc}")
        time.sleep(0.1)
    return i
