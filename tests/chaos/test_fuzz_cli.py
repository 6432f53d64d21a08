"""Bad input to athenactl (issue 15): payloads that are not JSON or are too large, ids
with ``../``, NUL bytes and unicode, unknown agents and parents, absurd numbers,
malformed durations, rates and cron expressions. Each is one ``error:`` sentence and a
non-zero exit, never a traceback, and the stored jobs are exactly as they were.

Most commands run in this process through click's runner (fast enough for
hypothesis); a few run as real processes, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from athenad.paths import Home
from athenad.store.jobspec import MAX_PAYLOAD_BYTES
from tests.chaos.fuzz_support import (
    NASTY_TEXT,
    assert_no_traceback,
    assert_refused,
    ctl,
    dump_state,
    files_of,
    seed,
)

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dict[str, str]]:
    home = Home.resolve(tmp_path_factory.mktemp("fuzz-cli") / "home")
    return home, seed(home)


def refused_and_unchanged(home: Home, *args: str, input: str | None = None) -> str:
    before, files = dump_state(home), files_of(home)
    line = assert_refused(ctl(home, *args, input=input))
    assert dump_state(home) == before
    assert files_of(home) == files
    return line


# ---- payloads ----------------------------------------------------------------------------

NOT_JSON = st.one_of(
    st.text(max_size=60).filter(lambda text: not _is_json(text)),
    st.sampled_from(["{", "[1,", "NaN", "Infinity", "-Infinity", "1e999", "{'a': 1}", "\x00"]),
    st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth),
    st.just("[" * 50_000 + "]" * 50_000),  # valid JSON, nested past any parser's stack
    st.just("9" * 5000),  # a number too long for Python's int parsing
)


def _is_json(text: str) -> bool:
    try:
        json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ValueError, ZeroDivisionError, RecursionError):
        return False
    return True


@FUZZ
@given(text=NOT_JSON)
def test_a_payload_that_is_not_json_is_one_sentence(seeded, text: str) -> None:
    home, _ = seeded
    line = refused_and_unchanged(home, "submit", "echo", "--payload", text)
    assert "payload" in line


@FUZZ
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )
)
def test_any_json_value_is_a_payload_and_is_stored_as_given(seeded, value) -> None:
    """Objects, arrays and scalars are all payloads (echo takes any); an agent that needs
    an object refuses the job when it runs (see test_security's daemon run)."""
    home, _ = seeded
    text = json.dumps(value)
    result = ctl(home, "submit", "echo", "--payload", text, "--json")
    if any(isinstance(x, float) and abs(x) == float("inf") for x in _leaves(value)):
        assert_refused(result)
        return
    assert_no_traceback(result)
    assert result.exit_code == 0, result.stderr
    job_id = json.loads(result.stdout)["id"]
    shown = json.loads(ctl(home, "show", job_id, "--json").stdout)
    assert shown["payload"] == json.loads(text)


def _leaves(value):
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def test_a_payload_over_the_limit_is_refused_from_every_source(seeded, tmp_path) -> None:
    home, _ = seeded
    huge = json.dumps({"data": "x" * MAX_PAYLOAD_BYTES})
    big_file = tmp_path / "big.json"
    big_file.write_text(huge)
    for args, stdin in (
        (("--payload", huge), None),
        (("--payload-file", str(big_file)), None),
        (("--payload-file", "-"), huge),
    ):
        line = refused_and_unchanged(home, "submit", "echo", *args, input=stdin)
        assert "at most 16 MiB" in line, line
    # Just under the limit goes through.
    fits = json.dumps({"data": "x" * (MAX_PAYLOAD_BYTES - 100)})
    result = ctl(home, "submit", "echo", "--payload-file", "-", input=fits)
    assert result.exit_code == 0, result.stderr


def test_payload_files_that_cannot_be_read(seeded, tmp_path) -> None:
    home, _ = seeded
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"a": "\xff\xfe"}')
    for source in (str(tmp_path / "missing.json"), str(tmp_path), str(binary), ""):
        refused_and_unchanged(home, "submit", "echo", "--payload-file", source)
    refused_and_unchanged(home, "submit", "echo", "--payload", "{}", "--payload-file", "-")


# ---- ids -----------------------------------------------------------------------------------


@FUZZ
@given(
    job_id=NASTY_TEXT,
    command=st.sampled_from(
        ["show", "cancel", "retry", "approve", "reject", "steps", "logs", "checkpoints"]
    ),
)
def test_an_id_that_names_no_job_is_one_sentence(seeded, job_id: str, command: str) -> None:
    home, _ = seeded
    if job_id.startswith("-"):
        job_id = "x" + job_id  # an option, not an id
    refused_and_unchanged(home, command, job_id)


@FUZZ
@given(job_id=NASTY_TEXT, key=NASTY_TEXT)
def test_an_event_to_no_job_is_one_sentence(seeded, job_id: str, key: str) -> None:
    home, _ = seeded
    refused_and_unchanged(home, "send", "x" + job_id, "x" + key, "--payload", "{}")


@settings(FUZZ, max_examples=8)
@given(session=NASTY_TEXT, rng=st.randoms())
def test_a_session_that_is_no_session_is_one_sentence(seeded, session: str, rng) -> None:
    home, _ = seeded
    if session.startswith("-"):
        session = "x" + session
    refused_and_unchanged(home, "submit", "echo", "--session", session)
    refused_and_unchanged(
        home, *rng.choice([("sessions", "show"), ("sessions", "export")]), session
    )
    refused_and_unchanged(home, "sessions", "add", session, "--role", "user", "hello")


@FUZZ
@given(parents=st.lists(NASTY_TEXT, min_size=1, max_size=3))
def test_unknown_parents_in_after_are_one_sentence(seeded, parents: list[str]) -> None:
    home, jobs = seeded
    args = [arg for parent in [jobs["done"], *parents] for arg in ("--after", parent)]
    line = refused_and_unchanged(home, "submit", "echo", *args)
    assert "dependency" in line or "not UTF-8 text" in line


def test_after_naming_a_job_twice_or_a_finished_job_makes_one_edge(seeded) -> None:
    """A cycle cannot be written from the command line (a new job can only name jobs
    that exist); naming the same parent twice is one edge."""
    home, jobs = seeded
    result = ctl(home, "submit", "echo", "--after", jobs["waiting"], "--after", jobs["waiting"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(ctl(home, "show", result.stdout.strip(), "--json").stdout)
    assert shown["parents"] == [jobs["waiting"]] and shown["status"] == "blocked"


# ---- agent types ----------------------------------------------------------------------------


@FUZZ
@given(job_type=NASTY_TEXT.filter(lambda t: t not in ("echo", "sleep", "shell", "llm")))
def test_an_unknown_agent_type_is_refused_at_submit(seeded, job_type: str) -> None:
    home, _ = seeded
    if job_type.startswith("-") or job_type == "cli-agent":
        job_type = "x" + job_type
    line = refused_and_unchanged(home, "submit", job_type)
    assert "unknown job type" in line and "echo" in line


# ---- numbers, durations, rates --------------------------------------------------------------

ABSURD_NUMBERS = st.one_of(
    st.integers(min_value=2**63, max_value=2**200).map(str),
    st.integers(max_value=-(2**63) - 1, min_value=-(2**200)).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "0x10", "", " ", "1_000", "٣", "1.5"]),
    NASTY_TEXT,
)


@FUZZ
@given(
    option=st.sampled_from(["--priority", "--max-attempts", "--timeout", "--budget-usd"]),
    value=ABSURD_NUMBERS,
)
def test_absurd_numbers_are_refused_or_taken_never_a_traceback(seeded, option, value) -> None:
    home, _ = seeded
    before = len(dump_state(home)["jobs"])
    result = ctl(home, "submit", "echo", f"{option}={value}")
    assert_no_traceback(result)
    if result.exit_code == 0:  # a value that is in range after all ("1_000", "-0", ...)
        assert len(dump_state(home)["jobs"]) == before + 1
    else:
        assert_refused(result)
        assert len(dump_state(home)["jobs"]) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--priority", str(2**63)),
        ("--priority", str(-(2**63) - 1)),
        ("--max-attempts", "0"),
        ("--max-attempts", "-3"),
        ("--max-attempts", str(2**64)),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--timeout", "nan"),
        ("--timeout", "1e12"),
        ("--budget-usd", "0"),
        ("--budget-usd", "-5"),
        ("--delay", "-5m"),
        ("--delay", "10x"),
        ("--delay", "nan"),
        ("--delay", "1e400s"),
        ("--delay", "9999999999w"),
        ("--approval-timeout", "0"),
        ("--approval-timeout", "soon"),
        ("--at", "yesterday"),
        ("--at", "9999-12-31T23:59:59-23:59"),
        ("--at", "10000-01-01T00:00:00Z"),
        ("--queue", "../x"),
        ("--queue", "a\x00b"),
        ("--unique-key", ""),
        ("--unique-key", "k" * 201),
        ("--concurrency-key", "k" * 201),
    ],
)
def test_each_bad_submit_option_is_one_sentence(seeded, option: str, value: str) -> None:
    home, _ = seeded
    refused_and_unchanged(home, "submit", "echo", f"{option}={value}")


DURATION_TEXT = st.one_of(
    NASTY_TEXT,
    st.builds(
        lambda number, unit: f"{number}{unit}",
        st.one_of(st.integers(-(10**20), 10**20), st.floats(allow_nan=True)),
        st.sampled_from(["", "s", "m", "h", "d", "w", "x", "ms", " s", "y"]),
    ),
)


@FUZZ
@given(option=st.sampled_from(["--delay", "--approval-timeout"]), value=DURATION_TEXT)
def test_malformed_durations_are_refused_or_taken_never_a_traceback(seeded, option, value):
    home, _ = seeded
    before = len(dump_state(home)["jobs"])
    result = ctl(home, "submit", "echo", f"{option}={value}")
    assert_no_traceback(result)
    if result.exit_code != 0:
        assert_refused(result)
        assert len(dump_state(home)["jobs"]) == before


@FUZZ
@given(
    option=st.sampled_from(["--rate", "--concurrency", "--priority"]),
    value=st.one_of(
        ABSURD_NUMBERS,
        st.builds(
            lambda count, unit: f"{count}/{unit}",
            st.one_of(st.integers(-5, 10**30), st.text(max_size=4)),
            st.sampled_from(["s", "m", "h", "x", "", "sec", "day", "0"]),
        ),
    ),
)
def test_queue_limits_are_refused_or_taken_never_a_traceback(seeded, option, value) -> None:
    home, _ = seeded
    jobs_before = dump_state(home)["jobs"]
    result = ctl(home, "queue", "set", "slow", f"{option}={value}")
    assert_no_traceback(result)
    if result.exit_code != 0:
        assert_refused(result)
    assert dump_state(home)["jobs"] == jobs_before


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("queue", "set", "default", "--rate", "10/x"), "is not a rate"),
        (("queue", "set", "default", "--rate", "0/s"), "is not a rate"),
        (("queue", "set", "default", "--rate", "9" * 5000 + "/s"), "is not a rate"),
        (("queue", "set", "default", "--concurrency", str(2**70)), "64 bits"),
        (("queue", "set", "default", "--priority", str(2**70)), "64 bits"),
        (("queue", "set", "../x", "--concurrency", "1"), "queue name"),
        (("queue", "pause", "a\x00b"), "queue name"),
        (("prune", "--older-than", "10x"), "not a duration"),
        (("prune", "--older-than", "-1d"), "positive"),
        (("stats", "--since", "1e400d"), "not a duration"),
        (("failed", "--since", "../x"), "not a duration"),
        (("jobs", "--limit", "0"), "--limit"),
        (("jobs", "--limit", str(2**70)), "64 bits"),
        (("wait", "nosuch", "--timeout", "nan"), "--timeout"),
    ],
)
def test_bad_limits_and_windows_are_one_sentence(seeded, args, mentions) -> None:
    home, _ = seeded
    line = refused_and_unchanged(home, *args)
    assert mentions in line, line


# ---- schedules (cron) -------------------------------------------------------------------

CRON_FIELDS = st.sampled_from(
    ["*", "*/0", "*/15", "0", "60", "24", "31", "32", "13", "8", "1-0", "L", "?", "a", "é", "-1"]
)


@FUZZ
@given(
    when=st.one_of(
        st.lists(CRON_FIELDS, min_size=1, max_size=7).map(lambda f: ("cron", " ".join(f))),
        st.sampled_from(["0 0 31 2 *", "0 0 30 2 *", "@reboot", "@daily", ""]).map(
            lambda c: ("cron", c)
        ),
        DURATION_TEXT.map(lambda d: ("every", d)),
    ),
    timezone=st.one_of(
        st.just("UTC"),
        st.sampled_from(["Europe/Paris", "../../etc/passwd", "/etc/localtime", "", "Mars/Base"]),
        NASTY_TEXT,
    ),
)
def test_schedule_list_with_any_cron_or_timezone_is_never_a_traceback(
    tmp_path_factory, when, timezone
) -> None:
    home = Home.resolve(tmp_path_factory.mktemp("cron"))
    key, value = when
    config = {"schedules": {"s": {"agent": "echo", key: value, "timezone": timezone}}}
    home.config_path.write_text(_toml(config))
    result = ctl(home, "schedule", "list", "--json")
    assert_no_traceback(result)
    if result.exit_code != 0:
        line = assert_refused(result)
        assert "athena.toml" in line
    assert not home.db_path.exists()  # listing never creates a database


def _toml(config: dict) -> str:
    lines = []
    for name, fields in config["schedules"].items():
        lines.append(f"[schedules.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"cron": "0 0 31 2 *"}, "never matches"),
        ({"cron": "60 * * * *"}, "not a cron expression"),
        ({"cron": "* * * * 8"}, "not a cron expression"),
        ({"every": "0s"}, "positive"),
        ({"every": "99999999999999w"}, "too long"),
        ({"every": "10x"}, "not a duration"),
        ({"cron": "* * * * *", "timezone": "../../etc/passwd"}, "time zone"),
        ({"cron": "* * * * *", "priority": 2**70}, "<="),
        ({"cron": "* * * * *", "queue": "../x"}, "queue name"),
    ],
)
def test_each_bad_schedule_is_one_sentence_naming_it(tmp_path, fields, mentions) -> None:
    home = Home.resolve(tmp_path)
    home.config_path.write_text(_toml({"schedules": {"nightly": {"agent": "echo", **fields}}}))
    line = assert_refused(ctl(home, "schedule", "list"))
    assert mentions in line and "athena.toml" in line, line


# ---- as a user runs it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "echo", "--payload", "{"),
        ("submit", "echo", "--payload", "[" * 100_000),
        ("submit", "no-such-agent"),
        ("submit", "echo", "--after", "../../etc/passwd"),
        ("submit", "echo", "--priority", str(2**64)),
        ("submit", "echo", "--delay", "5 fortnights"),
        ("queue", "set", "default", "--rate", "10/x"),
        ("show", "../../../etc/passwd"),
        ("sessions", "show", "/etc/passwd"),
    ],
)
def test_real_processes_print_one_sentence_and_exit_non_zero(seeded, args) -> None:
    home, _ = seeded
    before = dump_state(home)
    result = subprocess.run(
        [sys.executable, "-m", "athenad.cli.ctl", *args, "--home", str(home.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert dump_state(home) == before
