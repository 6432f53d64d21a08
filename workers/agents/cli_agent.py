"""The ``cli-agent`` built-in: runs a coding agent's command line and keeps its work.

Payload::

    {"command": "claude" | "codex" | NAME,   # or "argv": [...] (with "format")
     "prompt": "...", "cwd": "...", "model": "...", "args": [...], "session": "ID"}

``claude`` runs ``claude -p PROMPT --output-format stream-json --verbose``, ``codex``
runs ``codex exec --json PROMPT`` (``--model`` added when the payload names a model;
``args`` appended before codex's prompt, after claude's options); any other NAME is the
template ``[cli_agents.NAME]`` of athena.toml (which may also redefine claude or codex),
its ``{prompt}``, ``{cwd}`` and ``{model}`` replaced and ``args`` appended. ``argv``
runs an explicit argument list, read as ``format`` (default ``text``): whoever may
submit jobs may run ``shell`` already, so this opens nothing new.

The command runs in ``cwd`` (default: the home) in its own process group. Its events go
into the job's session as they arrive (the session of ``submit --session`` or of
``"session"``, else a new one, made once per job even if the job runs again), usage is
recorded on the job as the events report it, and the job's timeout or a cancel kills
the whole group. A non-zero exit, or an error the agent reports, fails the job with
the tail of its stderr (or the reported error).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athenad.config import CliAgentConfig, load_config
from athenad.errors import AthenaError, InvalidInput
from athenad.storage.sessions.manager import new_header
from workers.agents.agent_events import PARSERS, Entry, EventParser, Parsed
from workers.agents.procs import POLL_S, TAIL_BYTES, leader_exited, process_group, tail
from workers.interrupts import Cancelled

if TYPE_CHECKING:
    from athenad.storage.contract import SessionStore

PAYLOAD_KEYS = ("command", "argv", "format", "prompt", "cwd", "model", "args", "session")
DRAIN_S = 2.0  # how long the pipes may stay open after the command exited
CHUNK = 1 << 16
PROGRESS_EVERY_S = 0.5
_PLACEHOLDER = re.compile(r"\{(prompt|cwd|model)\}")


class CliAgentFailed(AthenaError):
    """The agent's command exited with an error, or reported one."""


@dataclass(frozen=True)
class Plan:
    """What to run: the command line, how its output reads, where, as which name."""

    name: str
    argv: list[str]
    format: str
    cwd: str
    prompt: str | None
    model: str | None


def _builtin(name: str, prompt: str, model: str | None, args: list[str]) -> list[str] | None:
    model_args = ["--model", model] if model else []
    if name == "claude":
        return [
            "claude",
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            *model_args,
            *args,
        ]
    if name == "codex":
        return ["codex", "exec", "--json", *model_args, *args, prompt]
    return None


BUILTIN_FORMATS = {"claude": "claude-stream-json", "codex": "codex-json"}


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"cli-agent's {what} must be a list of strings, not {value!r}.")
    return value


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidInput(f"cli-agent's {key} must be non-empty text, not {value!r}.")
    return value


def _fill(template: list[str], name: str, values: dict[str, str | None]) -> list[str]:
    """The template's arguments with {prompt}, {cwd} and {model} replaced (one pass,
    so a prompt that contains "{cwd}" stays as written)."""

    def value(match: re.Match[str]) -> str:
        found = values[match.group(1)]
        if found is None:
            raise InvalidInput(
                f"[cli_agents.{name}] uses {{{match.group(1)}}} but the payload has no "
                f'"{match.group(1)}".'
            )
        return found

    return [_PLACEHOLDER.sub(value, arg) for arg in template]


def make_plan(payload: Any, templates: dict[str, CliAgentConfig], home: Path) -> Plan:
    """Check the payload and build the command line; InvalidInput names the problem."""
    if not isinstance(payload, dict):
        raise InvalidInput('cli-agent needs a JSON object: {"command": "claude", "prompt": "..."}.')
    unknown = sorted(set(payload) - set(PAYLOAD_KEYS))
    if unknown:
        raise InvalidInput(
            f"cli-agent does not know the payload key(s) {', '.join(unknown)}; "
            f"it reads {', '.join(PAYLOAD_KEYS)}."
        )
    if ("command" in payload) == ("argv" in payload):
        raise InvalidInput('cli-agent needs exactly one of "command" (a name) and "argv" (a list).')
    prompt = _optional_text(payload, "prompt")
    model = _optional_text(payload, "model")
    extra = _strings(payload.get("args", []), "args")
    given = payload.get("cwd")
    cwd = os.path.abspath(os.path.join(home, given)) if isinstance(given, str) else str(home)
    if (given is not None and not isinstance(given, str)) or not os.path.isdir(cwd):
        raise InvalidInput(f"cli-agent's cwd {given!r} is not a directory.")
    if "argv" in payload:
        argv = _strings(payload["argv"], "argv")
        fmt = payload.get("format", "text")
        if fmt not in PARSERS:
            raise InvalidInput(f"cli-agent's format {fmt!r} is not one of {', '.join(PARSERS)}.")
        if not argv:
            raise InvalidInput("cli-agent's argv must name a program.")
        return Plan(Path(argv[0]).name, [*argv, *extra], fmt, cwd, prompt, model)
    name = payload["command"]
    if "format" in payload:
        raise InvalidInput('cli-agent reads "format" only with "argv"; a named command has one.')
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"cli-agent's command must be a name, not {name!r}.")
    if prompt is None:
        raise InvalidInput(f'cli-agent needs a "prompt" for {name}.')
    template = templates.get(name)
    if template is not None:
        argv = _fill(template.command, name, {"prompt": prompt, "cwd": cwd, "model": model})
        return Plan(name, [*argv, *extra], template.format, cwd, prompt, model)
    builtin = _builtin(name, prompt, model, extra)
    if builtin is None:
        known = ", ".join(sorted({"claude", "codex", *templates}))
        raise InvalidInput(
            f"cli-agent knows no command {name!r} (known: {known}); add [cli_agents.{name}] "
            "to athena.toml."
        )
    return Plan(name, builtin, BUILTIN_FORMATS[name], cwd, prompt, model)


# ---- the job ----------------------------------------------------------------------------


def _worker_part(ctx: Any, attribute: str) -> Any:
    """The context's ``config`` or ``sessions``, else its worker's (a context that offers
    the session store only to a job submitted with a session, and no config)."""
    found = getattr(ctx, attribute, None)
    if found is None:
        found = getattr(getattr(ctx, "_worker", None), attribute, None)
    return found


def _session(ctx: Any, store: SessionStore, plan: Plan) -> str:
    """The job's session: its own, the payload's, or a new one (made once per job)."""
    wanted = ctx.session_id or (
        ctx.payload.get("session") if isinstance(ctx.payload, dict) else None
    )
    if wanted is not None:
        if not store.exists(wanted):
            raise InvalidInput(f"session {wanted!r} does not exist.")
        return str(wanted)

    def create() -> str:
        title = (plan.prompt or " ".join(plan.argv)).strip().split("\n", 1)[0]
        header = new_header(
            f"{plan.name}: {title[:60]}", ["cli-agent", plan.name], None, None, Path(plan.cwd)
        )
        return str(store.write_new_session(header, []))

    step = getattr(ctx, "step", None)
    return str(step("cli-agent session", create)) if step else create()


class _Recorder:
    """Writes parsed events to the session and usage to the job, as they come."""

    def __init__(self, ctx: Any, store: SessionStore, session_id: str) -> None:
        self.ctx = ctx
        self.store = store
        self.session_id = session_id
        self.messages = 0
        self.usage: dict[str, Any] | None = None
        self._progress_at = 0.0

    def add(self, parsed: Parsed) -> None:
        for entry in parsed.entries:
            metadata = entry.stored_metadata()
            self.store.add_message(self.session_id, entry.role, entry.content, metadata)
            self.messages += 1
            if metadata.get("kind") == "tool_use":
                self._progress(f"{metadata.get('tool')}: {entry.content}")
        for usage in parsed.usage:
            cost = self.ctx.record_usage(
                usage.model, usage.tokens_in, usage.tokens_out, usage.cost_usd
            )
            total = self.usage or {"model": usage.model, "tokens_in": 0, "tokens_out": 0}
            total["tokens_in"] += usage.tokens_in
            total["tokens_out"] += usage.tokens_out
            total["cost_usd"] = round(total.get("cost_usd", 0.0) + cost, 9)
            total["model"] = usage.model
            self.usage = total

    def _progress(self, text: str) -> None:
        now = time.monotonic()
        if now - self._progress_at >= PROGRESS_EVERY_S:
            self._progress_at = now
            self.ctx.progress(None, " ".join(text.split())[:120])


def cli_agent(ctx: Any) -> dict[str, Any]:
    """Run a coding agent's command line (see the module's documentation)."""
    config = _worker_part(ctx, "config") or load_config(ctx.home)
    plan = make_plan(ctx.payload, config.cli_agents, Path(ctx.home.root))
    # Only before: the agents report usage at their end, when stopping saves nothing.
    ctx.check_budget()
    store: SessionStore = _worker_part(ctx, "sessions")
    session_id = _session(ctx, store, plan)
    recorder = _Recorder(ctx, store, session_id)
    if plan.prompt is not None:
        recorder.add(Parsed([_prompt_entry(plan.prompt, ctx.job_id)]))
    parser = PARSERS[plan.format](plan.model or plan.name)
    ctx.log("cli agent started", command=plan.name, cwd=plan.cwd, session=session_id)
    try:
        with process_group(ctx, plan.argv, cwd=plan.cwd, kill_leftovers=True) as proc:
            stderr = _pump(ctx, proc, lambda line: recorder.add(parser.feed(line)))
    except (FileNotFoundError, PermissionError) as exc:  # from starting the program
        raise InvalidInput(
            f"cannot run {plan.argv[0]!r}: {exc.strerror}; install it or name its path "
            f"in [cli_agents.{plan.name}]."
        ) from None
    except BaseException:
        with contextlib.suppress(Exception):  # the interrupt matters more than this
            recorder.add(parser.finish())
        raise
    recorder.add(parser.finish())
    code = proc.returncode
    if code != 0 or parser.error:
        raise CliAgentFailed(_failure(plan.name, code, stderr, parser))
    return {
        "message": parser.final,
        "session_id": session_id,
        "exit_code": code,
        "usage": recorder.usage,
        "agent_session_id": parser.agent_session,
        "messages": recorder.messages,
    }


def _prompt_entry(prompt: str, job_id: str) -> Entry:
    return Entry("user", prompt, {"kind": "text", "job_id": job_id})


def _failure(name: str, code: int, stderr: bytes, parser: EventParser) -> str:
    """One sentence: how the command ended, then its stderr's tail or reported error."""
    if code == 0:
        return f"{name} reported an error: {parser.error}"
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    detail = tail(stderr).strip()[-1000:] or parser.error
    return f"{name} {how}: {detail}" if detail else f"{name} {how}"


def _pump(ctx: Any, proc: subprocess.Popen[bytes], on_line: Any) -> bytes:
    """Hand each line of stdout to ``on_line`` as it arrives; keep stderr's tail.

    Checks for cancellation ten times a second. Ends once the command exited and both
    pipes closed, or DRAIN_S after it exited if something it left running holds them.
    """
    assert proc.stdout is not None and proc.stderr is not None
    stderr = bytearray()
    partial: list[bytes] = []
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, "out")
        selector.register(proc.stderr, selectors.EVENT_READ, "err")
        while True:
            if not selector.get_map():
                time.sleep(POLL_S / 5)  # output closed, the command still running
                ready = []
            else:
                ready = selector.select(POLL_S)
            for key, _events in ready:
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.data == "err":
                    stderr += chunk
                    del stderr[:-TAIL_BYTES]
                elif b"\n" not in chunk:
                    partial.append(chunk)
                else:
                    *lines, rest = b"".join([*partial, chunk]).split(b"\n")
                    partial = [rest]
                    for line in lines:
                        on_line(line)
            if ctx.cancelled:
                raise Cancelled()
            if exited_at is None and leader_exited(proc):
                exited_at = time.monotonic()
            if exited_at is not None and (
                not selector.get_map() or time.monotonic() - exited_at > DRAIN_S
            ):
                break
    rest = b"".join(partial)
    if rest:
        on_line(rest)
    return bytes(stderr)
