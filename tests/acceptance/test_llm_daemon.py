"""The built-in ``llm`` agent through a running daemon, against an OpenAI-compatible
server on 127.0.0.1 (tests/support/fake_openai.py): the official SDK's requests go over
real HTTP, nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from athenad.paths import Home
from tests.conftest import cli, cli_json, job_row, submit, wait_status, wait_until
from tests.support.fake_openai import FakeOpenAI, usage

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

KEY_ENV = "FAKE_OPENAI_KEY"
GOOD_KEY = {KEY_ENV: "test-key"}
PRICE_IN, PRICE_OUT = 1.0, 2.0  # USD per million tokens

TOOLS = textwrap.dedent(
    """
    import json, os, time

    HERE = os.path.dirname(os.path.abspath(__file__))

    def note(**fields):
        with open(os.path.join(HERE, "tool-calls.jsonl"), "a") as ledger:
            ledger.write(json.dumps({**fields, "pid": os.getpid()}) + "\\n")

    def add(a: int, b: int = 0) -> int:
        \"\"\"Add two whole numbers.

        Args:
            a: the first number.
            b: the second number.
        \"\"\"
        note(a=a, event="start")
        hold = os.path.join(HERE, f"hold-{a}")  # the test holds a call here to kill its worker
        deadline = time.time() + 60
        while os.path.exists(hold) and time.time() < deadline:
            time.sleep(0.02)
        note(a=a, event="end")
        return a + b
    """
)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="test-key", models=("fake-1",)) as running:
        yield running


@pytest.fixture
def llm_home(home: Home, server: FakeOpenAI) -> Home:
    (home.root / "llmtools.py").write_text(TOOLS)
    (home.root / "athena.toml").write_text(
        f'[llm]\nbase_url = "{server.base_url}"\napi_key_env = "{KEY_ENV}"\n'
        'model = "fake-1"\ntimeout = 2\n\n'
        f'[llm.prices."fake-1"]\ninput = {PRICE_IN}\noutput = {PRICE_OUT}\n\n'
        '[tools]\nadd = "llmtools:add"\n'
    )
    return home


def submit_llm(home: Home, payload: dict, *options: str) -> str:
    return submit(home, "llm", "--payload", json.dumps(payload), *options)


def cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1_000_000


def statuses(server: FakeOpenAI) -> list:
    return [r["status"] for r in server.chat_requests()]


def test_a_prompt_completes_with_session_tokens_and_cost(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    job_id = submit_llm(llm_home, {"prompt": "hello athena", "system": "Be brief."})
    done = wait_status(llm_home, job_id, {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["content"] == "You said: hello athena"
    assert (result["turns"], result["model"], result["tool_calls"]) == (1, "fake-1", 0)

    (request,) = server.chat_requests()
    assert request["stream"] is True and request["model"] == "fake-1"
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello athena"},
    ]
    shown = cli_json("athenactl", "show", job_id, home=llm_home)
    assert (shown["model"], shown["tokens_in"], shown["tokens_out"]) == ("fake-1", 4, 4)
    assert shown["cost_usd"] == pytest.approx(cost(4, 4))
    assert result["cost_usd"] == pytest.approx(cost(4, 4))

    session = cli_json("athenactl", "sessions", "show", result["session"], home=llm_home)
    said = [(m["role"], m["content"]) for m in session["messages"]]
    assert said == [
        ("system", "Be brief."),
        ("user", "hello athena"),
        ("assistant", "You said: hello athena"),
    ]
    assert session["messages"][-1]["metadata"]["tokens_out"] == 4
    text = cli("athenactl", "sessions", "show", result["session"], home=llm_home).stdout
    assert "You said: hello athena" in text

    # The same session goes on: the model gets the conversation so far.
    again = submit_llm(llm_home, {"prompt": "and again", "session": result["session"]})
    assert wait_status(llm_home, again, {"completed", "failed"})["status"] == "completed"
    follow_up = server.chat_requests()[-1]["messages"]
    assert [m["content"] for m in follow_up] == [
        "Be brief.",
        "hello athena",
        "You said: hello athena",
        "and again",
    ]
    session = cli_json("athenactl", "sessions", "show", result["session"], home=llm_home)
    assert len(session["messages"]) == 5

    by_model = cli("athenactl", "stats", "--by", "model", home=llm_home)
    assert by_model.returncode == 0 and "fake-1" in by_model.stdout, by_model.stderr


def test_the_model_calls_tools_until_it_answers(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    prompt = 'Add these.\ncall add {"a": 2, "b": 3}\ncall add {"a": 10, "b": 20}'
    job_id = submit_llm(llm_home, {"prompt": prompt, "tools": ["add"]})
    done = wait_status(llm_home, job_id, {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["content"].endswith("| tool results: 5, 30")
    assert (result["turns"], result["tool_calls"]) == (3, 2)

    requests = server.chat_requests()
    assert [r["tools"] for r in requests] == [["add"]] * 3
    schema = requests[0]["tool_specs"][0]["function"]
    assert schema["description"] == "Add two whole numbers."
    assert schema["parameters"] == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "the first number."},
            "b": {"type": "integer", "description": "the second number.", "default": 0},
        },
        "required": ["a"],
    }
    # The second request carries the first call and its result, as the API wants them.
    second = requests[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert second[-1] == {"role": "tool", "tool_call_id": "call-1", "content": "5"}

    steps = cli_json("athenactl", "steps", job_id, home=llm_home)
    names = [s["name"] for s in steps]
    assert names == ["session", "model", "tool add", "model", "tool add", "model"]
    session = cli_json("athenactl", "sessions", "show", result["session"], home=llm_home)
    said = [(m["role"], m["content"]) for m in session["messages"]]
    assert said == [
        ("user", prompt),
        ("assistant", 'add({"a": 2, "b": 3})'),
        ("tool", "5"),
        ("assistant", 'add({"a": 10, "b": 20})'),
        ("tool", "30"),
        ("assistant", result["content"]),
    ]
    tokens = [usage({"messages": r["messages"]}, reply) for r, reply in _replies(requests)]
    shown = cli_json("athenactl", "show", job_id, home=llm_home)
    assert shown["tokens_in"] == sum(t["prompt_tokens"] for t in tokens)
    assert shown["tokens_out"] == sum(t["completion_tokens"] for t in tokens)


def test_a_spent_budget_stops_the_next_model_call(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    prompt = 'Add.\ncall add {"a": 1, "b": 1}\ncall add {"a": 2, "b": 2}'
    payload = {"prompt": prompt, "tools": ["add"]}
    job_id = submit_llm(llm_home, payload, "--budget-usd", "0.000001", "--max-attempts", "3")
    done = wait_status(llm_home, job_id, {"completed", "failed"})
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error"].startswith("budget exceeded: 0.00 of 0.00 USD (this job)")
    assert statuses(server) == [200]  # the first call spent it; the second was never made
    ledger = (llm_home.root / "tool-calls.jsonl").read_text().splitlines()
    assert len(ledger) == 2  # the one tool call between them: its start and its end


def _replies(requests: list[dict]) -> list[tuple[dict, dict]]:
    from tests.support.fake_openai import answer

    return [(r, answer({"messages": r["messages"], "tools": r["tools"]})) for r in requests]


def test_a_rate_limit_waits_without_spending_an_attempt(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    server.fail_next(429, retry_after="2")
    job_id = submit_llm(llm_home, {"prompt": "later please"})
    waiting = wait_until(
        lambda: (
            (row := cli_json("athenactl", "show", job_id, home=llm_home))["wait_reason"] and row
        ),
        timeout=20,
        what="the job to wait out the rate limit",
    )
    assert waiting["status"] == "pending"
    assert "429" in waiting["wait_reason"] and "retry after 2 s" in waiting["wait_reason"]
    done = wait_status(llm_home, job_id, {"completed", "failed"}, timeout=20)
    assert (done["status"], done["attempts"], done["max_attempts"]) == ("completed", 1, 1)
    assert statuses(server) == [429, 200]
    assert done["result"]["tokens_in"] == 2  # the refused call cost nothing


def test_server_errors_and_timeouts_are_retried(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    server.fail_next(500)
    retried = submit_llm(llm_home, {"prompt": "one"}, "--max-attempts", "2")
    done = wait_status(llm_home, retried, {"completed", "failed"})
    assert (done["status"], done["attempts"]) == ("completed", 2)
    assert statuses(server) == [500, 200]

    server.slow_next(4)  # longer than [llm] timeout = 2
    slow = submit_llm(llm_home, {"prompt": "two"}, "--max-attempts", "2")
    done = wait_status(llm_home, slow, {"completed", "failed"})
    assert (done["status"], done["attempts"]) == ("completed", 2)

    server.fail_next(500)
    failed = submit_llm(llm_home, {"prompt": "three"})
    done = wait_status(llm_home, failed, {"completed", "failed"})
    assert done["status"] == "failed"
    assert "the provider answered 500: scripted failure 500" in done["error"]
    server.slow_next(4)
    failed = submit_llm(llm_home, {"prompt": "four"})
    done = wait_status(llm_home, failed, {"completed", "failed"})
    assert "the model did not answer within 2" in done["error"]


def test_a_bad_key_fails_at_once_with_the_providers_message(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env={KEY_ENV: "wrong-key"})
    job_id = submit_llm(llm_home, {"prompt": "hello"}, "--max-attempts", "3")
    done = wait_status(llm_home, job_id, {"completed", "failed"})
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error"] == ("the provider refused the request (401): Incorrect API key provided.")
    assert statuses(server) == [401]


def test_an_unknown_model_or_a_bad_payload_fails_for_good(llm_home, server, daemon_factory):
    daemon_factory(workers=1, env=GOOD_KEY)
    cases = {
        json.dumps({"prompt": "hi", "model": "gpt-nope"}): "The model `gpt-nope` does not exist.",
        json.dumps({"system": "alone"}): 'llm needs {"prompt": "..."} or {"messages": [...]}',
        json.dumps({"prompt": "hi", "tools": ["rm"]}): "tool 'rm' is not registered in [tools]",
        json.dumps({"prompt": "hi", "temprature": 1}): "llm does not know payload key",
        json.dumps({"prompt": "hi", "session": "session-missing"}): "does not exist",
    }
    ids = {
        submit(llm_home, "llm", "--payload", p, "--max-attempts", "3"): e for p, e in cases.items()
    }
    for job_id, expected in ids.items():
        done = wait_status(llm_home, job_id, {"completed", "failed"})
        assert (done["status"], done["attempts"]) == ("failed", 1), done
        assert expected in done["error"]
    assert statuses(server) == [404]  # only the unknown model was asked of the server


def test_a_worker_killed_between_turns_never_repeats_a_finished_turn(
    llm_home, server, daemon_factory
):
    """Four tool calls, five model turns. The worker is SIGKILLed twice: while a tool
    runs (turn 2) and while the model is answering turn 4. The server's log shows each
    finished turn asked for once; only the call in flight at the second kill again."""
    daemon = daemon_factory(workers=1, env=GOOD_KEY)
    root = Path(llm_home.root)
    (root / "hold-3").touch()  # the second tool call waits here
    server.hold(4)  # and so does the fourth model request
    calls = "\n".join(f'call add {{"a": {a}, "b": {a}}}' for a in (1, 3, 5, 7))
    job_id = submit_llm(llm_home, {"prompt": f"Double these.\n{calls}", "tools": ["add"]})

    def ledger() -> list[dict]:
        path = root / "tool-calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    # Kill 1: the second tool call is running; the model's turn 2 answer is recorded.
    wait_until(lambda: any(e["a"] == 3 for e in ledger()), what="the second tool call")
    assert len(server.chat_requests()) == 2
    _kill_worker(llm_home, job_id, daemon)
    (root / "hold-3").unlink()

    # Kill 2: the fourth model request is in flight.
    server.wait_for_requests(4)
    _kill_worker(llm_home, job_id, daemon)
    server.release()

    done = wait_status(llm_home, job_id, {"completed", "failed"}, timeout=60)
    assert done["status"] == "completed", done["error"]
    assert done["result"]["content"].endswith("| tool results: 2, 6, 10, 14")
    assert done["result"]["turns"] == 5

    requests = server.chat_requests()
    bodies = [json.dumps(r["messages"], sort_keys=True) for r in requests]
    repeats = {body: n for body, n in Counter(bodies).items() if n > 1}
    assert len(requests) == 6 and len(set(bodies)) == 5
    assert repeats == {bodies[3]: 2}  # only the call cut short by kill 2: requests 4 and 5
    assert bodies[4] == bodies[3]

    # Each tool call finished once; only the one cut short by kill 1 started twice.
    ends = Counter(e["a"] for e in ledger() if e["event"] == "end")
    starts = Counter(e["a"] for e in ledger() if e["event"] == "start")
    assert ends == {1: 1, 3: 1, 5: 1, 7: 1} and starts == {1: 1, 3: 2, 5: 1, 7: 1}

    # Tokens were charged once per answered call: request 4's answer never arrived.
    answered = [r for n, r in enumerate(requests) if n != 3]
    charged = [usage({"messages": r["messages"]}, reply) for r, reply in _replies(answered)]
    shown = cli_json("athenactl", "show", job_id, home=llm_home)
    assert shown["tokens_in"] == sum(t["prompt_tokens"] for t in charged)
    assert shown["tokens_out"] == sum(t["completion_tokens"] for t in charged)

    session = cli_json("athenactl", "sessions", "show", done["result"]["session"], home=llm_home)
    parts = [m["metadata"]["part"] for m in session["messages"]]
    assert len(parts) == len(set(parts)) == 10  # prompt, 4 calls, 4 results, the answer
    print(
        f"2 kills: {len(requests)} model requests for 5 turns, "
        f"{sum(n - 1 for n in repeats.values())} repeated (the one in flight), "
        f"tool starts {sum(starts.values())} for 4 calls"
    )


def _kill_worker(home: Home, job_id: str, daemon) -> None:
    """SIGKILL the worker running the job, and wait until it is gone."""
    pid = wait_until(
        lambda: (row := job_row(home, job_id))["status"] == "running" and row["worker_pid"],
        what="the job to run",
    )
    assert pid in daemon.worker_pids()
    process = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_on_postgresql_a_killed_conversation_resumes_from_its_tables(
    llm_home, server, daemon_factory, postgres_url, postgres_schema
):
    env = {
        **GOOD_KEY,
        "ATHENA_DATABASE_URL": postgres_url,
        "ATHENA_DATABASE_SCHEMA": postgres_schema,
    }
    daemon_factory(workers=1, env=env)
    server.hold(2)
    prompt = 'Add.\ncall add {"a": 1, "b": 2}\ncall add {"a": 3, "b": 4}'
    payload = json.dumps({"prompt": prompt, "tools": ["add"]})
    submitted = cli("athenactl", "submit", "llm", "--payload", payload, home=llm_home, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()

    def show() -> dict:
        return json.loads(cli("athenactl", "show", job_id, "--json", home=llm_home, env=env).stdout)

    server.wait_for_requests(2)
    pid = wait_until(lambda: show()["worker_pid"], what="the job to run")
    process = psutil.Process(pid)
    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    server.release()
    done = wait_until(
        lambda: (row := show())["status"] in ("completed", "failed") and row, timeout=60
    )
    assert done["status"] == "completed", done["error"]
    assert done["result"]["content"].endswith("| tool results: 3, 7")
    bodies = [json.dumps(r["messages"], sort_keys=True) for r in server.chat_requests()]
    assert len(bodies) == 4 and bodies[1] == bodies[2] and len(set(bodies)) == 3
    session_id = done["result"]["session"]
    session = cli("athenactl", "sessions", "show", session_id, "--json", home=llm_home, env=env)
    roles = [m["role"] for m in json.loads(session.stdout)["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
