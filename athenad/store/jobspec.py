"""What a job is made of before and after a claim, and the checks on submitted input."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from athenad.config import check_queue_name
from athenad.errors import InvalidInput

MAX_BACKOFF_S = 3600.0
MAX_SECONDS = 365 * 86400.0
# 9999-01-01T00:00:00Z: later moments do not fit the stored time text.
LATEST_MOMENT = 253370764800.0
# The most JSON a job's payload (or an event's) may take: it is stored in the job's
# row and decoded at every claim. Larger data belongs in a file the payload names.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
# A job type names an agent: text of this many characters at most, no control characters.
MAX_TYPE_CHARS = 200

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class JobSpec(msgspec.Struct, kw_only=True):
    """What a submit needs; ``after`` holds parent ids, or indexes into the same batch."""

    type: str
    payload: Any = None
    agent_type: str | None = None
    # None: the queue's default priority ([queues.NAME] priority), else 0.
    priority: int | None = None
    after: Sequence[str | int] = ()
    max_attempts: int = 1
    backoff_s: float = 1.0
    timeout_s: float | None = None
    session_id: str | None = None
    # A job with a delay or a run_at is 'scheduled' until then.
    delay_s: float = 0.0
    run_at: str | None = None  # ISO 8601 moment, like 2026-12-24T09:00:00Z
    queue: str = "default"
    unique_key: str | None = None
    concurrency_key: str | None = None
    approval_timeout_s: float | None = None
    budget_usd: float | None = None


class Submitted(msgspec.Struct, frozen=True):
    """A submit's outcome: the job's id, and whether it was a live job with the same
    unique key (then no new job was made)."""

    id: str
    duplicate: bool = False


class ClaimedJob(msgspec.Struct, kw_only=True):
    """A job a worker now holds, with the fence that proves it."""

    id: str
    type: str
    agent_type: str
    payload: Any
    attempt: int
    max_attempts: int
    fence: int
    timeout_s: float | None
    checkpoint_iteration: int | None
    session_id: str | None
    priority: int
    interruptions: int
    # time.monotonic() when the lease was computed: the holder's lease ends at
    # lease_started + the lease length, by its own clock.
    lease_started: float = 0.0
    queue: str = "default"
    concurrency_key: str | None = None
    # A person's answer to the job's request for approval, once given.
    approval_decision: str | None = None
    approval_note: str | None = None
    approval_question: str | None = None


def encode_json(value: Any, what: str) -> str:
    """Encode a payload or result as JSON text, or raise one clear InvalidInput."""
    try:
        return _encoder.encode(value).decode()
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidInput(f"{what} cannot be encoded as JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{what} cannot be encoded as JSON: it nests too deeply.") from None


def encode_payload(value: Any, what: str) -> str:
    """Encode a job's or an event's payload, refusing one over MAX_PAYLOAD_BYTES."""
    text = encode_json(value, what)
    if len(text) > MAX_PAYLOAD_BYTES // 4 and len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(payload_too_large(what, len(text.encode())))
    return text


def payload_too_large(what: str, size: int | None = None) -> str:
    """The sentence refusing a payload over MAX_PAYLOAD_BYTES."""
    actual = "" if size is None else f" ({size / 2**20:.1f} MiB)"
    return (
        f"{what} is too large{actual}: a payload may take at most "
        f"{MAX_PAYLOAD_BYTES // 2**20} MiB of JSON; put larger data in a file and pass its path."
    )


def check_type(value: Any) -> str:
    """A job type: an agent's name, 1 to MAX_TYPE_CHARS characters, no control characters."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_TYPE_CHARS
        or not value.isprintable()
    ):
        shown = value[:MAX_TYPE_CHARS] if isinstance(value, str) else value
        raise InvalidInput(
            f"job type {shown!r} is not an agent name: use 1 to {MAX_TYPE_CHARS} "
            "printable characters."
        )
    return value


def decode_json(text: str | None) -> Any:
    return None if text is None else _decoder.decode(text)


def backoff_delay(attempt: int, base_s: float) -> float:
    """Exponential backoff with full jitter in [50%, 100%] of base * 2**(attempt-1)."""
    ceiling = min(MAX_BACKOFF_S, base_s * (2 ** max(attempt - 1, 0)))
    return ceiling * (0.5 + random.random() / 2)


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} {value!r} is not an integer.")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{name} {value!r} must be at least {minimum}.")
    if not -(2**63) <= value < 2**63:
        raise InvalidInput(f"{name} {value!r} is too large: it must fit in 64 bits.")
    return value


def check_seconds(name: str, value: Any, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidInput(f"{name} {value!r} is not a non-negative number of seconds.")
    if value > MAX_SECONDS:
        raise InvalidInput(f"{name} {value!r} is too long: at most {MAX_SECONDS:g} s (a year).")
    return float(value)


def spec_from(item: JobSpec | Mapping[str, Any]) -> JobSpec:
    if isinstance(item, JobSpec):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInput(f"a task must be a dict with at least a 'type', not {item!r}.")
    known = set(JobSpec.__struct_fields__)
    fields = dict(item)
    if "timeout" in fields and "timeout_s" not in fields:
        fields["timeout_s"] = fields.pop("timeout")
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InvalidInput(f"unknown task field(s) {', '.join(unknown)}; known: {sorted(known)}.")
    if not isinstance(fields.get("type"), str) or not fields["type"]:
        raise InvalidInput(f"a task needs a non-empty string 'type', got {fields.get('type')!r}.")
    return JobSpec(**fields)


def check_budget_usd(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
        raise InvalidInput(f"budget_usd {value!r} must be a positive number of US dollars.")
    return float(value)


def check_key(name: str, value: Any) -> str | None:
    """A unique or concurrency key: None, or text of 1 to 200 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise InvalidInput(f"{name} {value!r} must be text of 1 to 200 characters.")
    return value


def parse_moment(value: Any, what: str = "run_at") -> float:
    """Unix time of an ISO 8601 moment ('2026-12-24T09:00:00Z'; no zone means UTC)."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{what} {value!r} is not a moment: use ISO 8601, like 2026-12-24T09:00:00Z."
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        raise InvalidInput(f"{what} {value!r} is out of range.") from None


def start_time(spec: JobSpec, now: float) -> float | None:
    """When a job with a delay or a run_at may start (None: at once)."""
    delay = check_seconds("delay", spec.delay_s, allow_none=False) or 0.0
    if spec.run_at is not None:
        if delay:
            raise InvalidInput("give a job a delay or a run_at moment, not both.")
        moment = parse_moment(spec.run_at)
        if moment >= LATEST_MOMENT:
            raise InvalidInput(
                f"run_at {spec.run_at!r} is too far ahead: use a moment before the year 9999."
            )
        return moment if moment > now else None
    return now + delay if delay > 0 else None


def checked_fields(spec: JobSpec, index: int) -> dict[str, Any]:
    """The columns a submitted job's row takes from its spec, each checked."""
    what = f"the payload of task {index} ({spec.type!r})"
    return {
        "type": check_type(spec.type),
        "agent_type": check_type(spec.agent_type or spec.type),
        "payload": encode_payload(spec.payload, what),
        "priority": None if spec.priority is None else check_int("priority", spec.priority),
        "max_attempts": check_int("max_attempts", spec.max_attempts, 1),
        "backoff_s": check_seconds("backoff_s", spec.backoff_s, allow_none=False),
        "timeout_s": check_seconds("timeout", spec.timeout_s, allow_none=True),
        "queue": check_queue_name(spec.queue),
        "unique_key": check_key("unique_key", spec.unique_key),
        "concurrency_key": check_key("concurrency_key", spec.concurrency_key),
        "approval_timeout_s": check_seconds(
            "approval_timeout", spec.approval_timeout_s, allow_none=True
        ),
        "budget_usd": check_budget_usd(spec.budget_usd),
    }


def resolve_parents(
    after: Sequence[str | int] | str | int, index: int, ids: list[str]
) -> list[str]:
    """Parent ids of task ``index``: ids as given, batch indexes turned into ids, no repeats."""
    parents: list[str] = []
    seen: set[str] = set()  # a fan-in after thousands of tasks: no quadratic scan
    if isinstance(after, str | int):
        after = [after]
    for ref in after:
        if isinstance(ref, bool):
            raise InvalidInput(f"dependency {ref!r} is neither a job id nor a batch index.")
        if isinstance(ref, int):
            if not 0 <= ref < index:
                raise InvalidInput(
                    f"task {index} depends on batch index {ref}, which is not an earlier task."
                )
            ref = ids[ref]
        elif not isinstance(ref, str):
            raise InvalidInput(f"dependency {ref!r} is neither a job id nor a batch index.")
        if ref not in seen:
            seen.add(ref)
            parents.append(ref)
    return parents


def unique_key_taken(job_id: str, key: str, holder: str) -> str:
    """Why a job cannot run again while another holds its unique key."""
    return (
        f"job {job_id} has unique key {key!r}, which job {holder} holds while it is "
        "unfinished; retry it once that job has finished."
    )


def timed_out_message(seconds: float | None) -> str:
    """The error of a job stopped by its timeout."""
    return "timed out" if seconds is None else f"timed out after {seconds:g} s"


class Finished(NamedTuple):
    """A job that ran to completion: its id, the fence it ran under, and its result
    already encoded as JSON text (see :func:`encode_json`)."""

    job_id: str
    fence: int
    result: str


class BatchReport(msgspec.Struct, frozen=True):
    """What ``complete_batch`` did: dependents made ready, jobs claimed next (in the
    order to run them), and completions refused because another fence holds the job."""

    released: list[str]
    claimed: list[ClaimedJob]
    stale: list[str]


def free_prefix(candidates: Iterable[tuple[Any, ...]]) -> list[str]:
    """Ids of a batch claim: the candidates (id, free) in claim order, up to the first
    one whose limits must be checked on its own."""
    ids = []
    for job_id, free in candidates:
        if not free:
            break
        ids.append(job_id)
    return ids


def claimed_job(row: tuple[Any, ...], lease_started: float) -> ClaimedJob:
    """A claim's row as the worker gets it (the columns of either backend's claim_job
    query, in order); ``lease_started`` is time.monotonic() when the lease was set."""
    return ClaimedJob(
        id=row[0],
        type=row[1],
        agent_type=row[2],
        payload=_decoder.decode(row[3]),
        attempt=row[4],
        max_attempts=row[5],
        fence=row[6],
        timeout_s=row[7],
        checkpoint_iteration=row[8],
        session_id=row[9],
        priority=row[10],
        interruptions=row[11],
        lease_started=lease_started,
        queue=row[12],
        concurrency_key=row[13],
        approval_decision=row[14],
        approval_note=row[15],
        approval_question=row[16],
    )
