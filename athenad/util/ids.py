"""Short job ids that sort by creation time.

An id is 15 characters of lowercase Crockford base32: 9 for the millisecond
timestamp, then 6 that count up within one millisecond of one process and start
at a random value, so ids from several processes rarely collide and sort by
creation everywhere. A forked child starts its own count: it would otherwise
continue the parent's and make the very ids the parent makes next.
"""

from __future__ import annotations

import os
import threading
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 9
_TAIL_CHARS = 6
_TAIL_MAX: int = 32**_TAIL_CHARS  # (int ** int is Any to a type checker)

_lock = threading.Lock()
_last_ms = 0
_last_tail = 0
_last_prefix = ""  # the encoded _last_ms


def _random_tail() -> int:
    # In the lower half, so a burst in one millisecond never overflows.
    return int.from_bytes(os.urandom(4), "big") % (_TAIL_MAX // 2)


def _forget_parent_state() -> None:
    """In a forked child: start a fresh count (and a fresh lock, in case a thread held it)."""
    global _lock, _last_ms, _last_tail, _last_prefix
    _lock = threading.Lock()
    _last_ms = 0
    _last_tail = 0
    _last_prefix = ""


os.register_at_fork(after_in_child=_forget_parent_state)


# Two characters at a time (a bulk submit makes thousands of ids).
_PAIRS = [high + low for high in ALPHABET for low in ALPHABET]


def _encode(value: int, width: int) -> str:
    out: list[str] = []
    for _ in range(width // 2):
        value, pair = divmod(value, 1024)
        out.append(_PAIRS[pair])
    if width % 2:
        out.append(ALPHABET[value % 32])
    return "".join(reversed(out))


def new_job_id() -> str:
    """A new unique id, greater than every id this process made before."""
    global _last_ms, _last_tail, _last_prefix
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            tail = _last_tail + 1
            if tail >= _TAIL_MAX:
                now_ms += 1
                tail = _random_tail()
        else:
            tail = _random_tail()
        if now_ms != _last_ms or not _last_prefix:
            _last_prefix = _encode(now_ms, _TIME_CHARS)
        _last_ms, _last_tail = now_ms, tail
        return _last_prefix + _encode(tail, _TAIL_CHARS)


def is_valid_job_id(text: str) -> bool:
    return len(text) == _TIME_CHARS + _TAIL_CHARS and all(ch in ALPHABET for ch in text)
