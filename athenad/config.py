"""Settings: the command-line flag, then the environment, then ``athena.toml``, then
the default. Each ``[daemon]`` key also comes from ``ATHENA_<KEY>`` (``ATHENA_LEASE=30``).

The optional ``athena.toml`` of a home:

[daemon]
workers = 4                   # default: the CPU count
max_jobs_per_worker = 0       # recycle a worker after this many jobs (0 = never)
max_memory_per_worker = "1GB" # recycle a worker above this RSS (0 = never)
drain_timeout = 30            # seconds `athenad stop` lets jobs finish
cancel_grace = 10             # seconds a cancelled job may take to stop
lease = 60                    # seconds a claim lasts without a heartbeat
synchronous = "NORMAL"        # or "FULL": fsync on every commit
host = "build-2"              # this daemon's name in worker ids (default: the hostname)

log_max_bytes = "10MB"        # rotate the daemon's log file past this size (0 = never)
log_backups = 5               # rotated log files kept
job_log_max_bytes = "1MB"     # lines a job may log before further lines are dropped
claim_batch = 64              # jobs a worker claims at once while jobs are short (1 = one)

[agents]
planner = "my_agents:plan"    # name = "module:object"; modules beside athena.toml import

[queues.models]               # a named queue (jobs say --queue models)
concurrency = 4               # at most 4 running across all workers and hosts
rate = "60/m"                 # at most 60 starts per minute (/s, /m, /h)
priority = 0                  # the priority of its jobs unless they say one

[limits]
key_concurrency = 1           # running jobs sharing one --concurrency-key

[schedules.nightly]
cron = "0 3 * * *"            # or every = "10m"
agent = "shell"
payload = {command = "make report"}
queue = "default"
timezone = "UTC"
catch_up = false              # true: enqueue every slot missed while no daemon ran

[retention]
completed = "14d"             # finished jobs older than this are pruned (unset: kept)
failed = "30d"
cancelled = "7d"
sessions = "90d"              # sessions untouched this long (unset: kept)

[llm]                         # the built-in llm agent's OpenAI-compatible endpoint
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"  # the variable holding the key, never the key itself
model = "gpt-4o-mini"
[llm.prices."gpt-4o-mini"]    # USD per million tokens
input = 0.15
output = 0.6

[tools]
word_count = "mytools:word_count"   # functions the llm agent may call

[cli_agents.aider]            # an external coding agent as a command template
command = ["aider", "--yes", "--message", "{prompt}"]
format = "text"

[budgets]
daily_usd = 5.0               # model calls stop once the home spent this today (UTC)
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from athenad.errors import ConfigError, InvalidInput
from athenad.paths import Home
from athenad.util.timefmt import parse_duration

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: int | str) -> int:
    """Bytes from 123, '512MB', '1GiB', '2g'."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{value!r} is not a size; use bytes or a unit like 512MB or 1GB.")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _UNITS[unit])


MAX_WORKERS = 1024
MAX_SECONDS = 365 * 86400.0
# Finite, non-negative, at most a year (msgspec refuses NaN against these bounds).
Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]


class DaemonConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings of the supervisor and its workers."""

    workers: Annotated[int, Meta(ge=0, le=MAX_WORKERS)] = 0
    max_jobs_per_worker: Annotated[int, Meta(ge=0)] = 0
    max_memory_per_worker: Annotated[int, Meta(ge=0)] | str = 0
    drain_timeout: Seconds = 30.0
    cancel_grace: Seconds = 10.0
    lease: Annotated[float, Meta(gt=0, le=MAX_SECONDS)] = 60.0
    synchronous: str = "NORMAL"
    # Empty: SQLite at <home>/athena.db. "postgresql://...": that server, in its schema.
    database_url: str = ""
    database_schema: Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "athena"
    poll_interval: Annotated[float, Meta(gt=0, le=3600)] = 2.0
    # Names this daemon in worker ids and the hosts list; two daemons on one machine
    # may act as two hosts.
    host: Annotated[str, Meta(pattern=r"^\S{1,255}$")] = msgspec.field(
        default_factory=lambda: os.uname().nodename
    )
    # "127.0.0.1:8765": the supervisor also serves the web dashboard there (athenactl web).
    http: str = ""
    http_allow_actions: bool = False
    log_max_bytes: Annotated[int, Meta(ge=0)] | str = "10MB"
    log_backups: Annotated[int, Meta(ge=0, le=1000)] = 5
    job_log_max_bytes: Annotated[int, Meta(ge=0)] | str = "1MB"
    # Jobs a worker claims at once while the jobs it runs are short (1: one at a time).
    claim_batch: Annotated[int, Meta(ge=1, le=1000)] = 64

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def memory_limit(self) -> int:
        return parse_size(self.max_memory_per_worker)

    def check_sizes(self) -> None:
        for value in (self.max_memory_per_worker, self.log_max_bytes, self.job_log_max_bytes):
            parse_size(value)


CLI_AGENT_FORMATS = ("claude-stream-json", "codex-json", "text")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def check_queue_name(name: str, what: str = "queue") -> str:
    """A queue (or schedule) name: letters, digits, ``_ . : -``, at most 64 characters."""
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise InvalidInput(
            f"{what} name {name!r} is not valid: use letters, digits and _ . : - "
            "(at most 64 characters, starting with a letter or digit)."
        )
    return name


_RATE = re.compile(r"^\s*([0-9]{1,18})\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str, what: str = "rate") -> tuple[int, float]:
    """(starts, period seconds) from '60/m', '5/s', '1000/h'."""
    match = _RATE.match(str(text))
    if not match or int(match.group(1)) < 1:
        raise InvalidInput(
            f"{what} {text!r} is not a rate: use a count per second, minute or hour, "
            "like 5/s, 60/m or 1000/h."
        )
    return int(match.group(1)), _PERIODS[match.group(2)[0].lower()]


INT64_MAX = 2**63 - 1
# A number stored in the database: it must fit in 64 bits.
Int64 = Annotated[int, Meta(ge=-(2**63), le=INT64_MAX)]
# The longest interval a schedule's `every` may have.
MAX_EVERY_S = 366 * 86400.0


class QueueConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[queues.NAME]``: limits of one named queue (``None``: no limit)."""

    concurrency: Annotated[int, Meta(ge=1, le=INT64_MAX)] | None = None
    rate: str | None = None
    priority: Int64 = 0


class LimitsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key_concurrency: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 1


class ScheduleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[schedules.NAME]``: a job enqueued on a cron expression or every interval."""

    agent: str
    cron: str | None = None
    every: str | None = None
    payload: Any = None
    queue: str = "default"
    timezone: str = "UTC"
    catch_up: bool = False
    priority: Int64 | None = None


class RetentionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[retention]``: how long finished jobs (and idle sessions) are kept; unset: forever."""

    completed: str | None = None
    failed: str | None = None
    cancelled: str | None = None
    sessions: str | None = None

    def ages(self) -> dict[str, float]:
        """Seconds to keep, by job status (only the statuses that are set)."""
        return {
            status: parse_duration(value, f"[retention] {status}")
            for status in ("completed", "failed", "cancelled")
            if (value := getattr(self, status)) is not None
        }

    def session_age(self) -> float | None:
        return (
            None if self.sessions is None else parse_duration(self.sessions, "[retention] sessions")
        )


class PriceConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[llm.prices."MODEL"]``: USD per million tokens."""

    input: Annotated[float, Meta(ge=0)] = 0.0
    output: Annotated[float, Meta(ge=0)] = 0.0


class LlmConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[llm]``: the OpenAI-compatible endpoint the built-in ``llm`` agent talks to.

    The key itself is never in the file: ``api_key_env`` names the environment variable
    that holds it.
    """

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    model: str = ""
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    max_turns: Annotated[int, Meta(ge=1, le=1000)] = 10
    prices: dict[str, PriceConfig] = msgspec.field(default_factory=dict)

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float | None:
        """USD for the tokens by the price table; None when the model has no price."""
        price = self.prices.get(model)
        if price is None:
            return None
        return (tokens_in * price.input + tokens_out * price.output) / 1_000_000


class CliAgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[cli_agents.NAME]``: an external agent command line, as a template.

    ``command`` is a list of arguments; ``{prompt}``, ``{cwd}`` and ``{model}`` in them
    are replaced from the job's payload. ``format`` says how its output reads:
    ``claude-stream-json``, ``codex-json`` or ``text``.
    """

    command: list[str]
    format: str = "claude-stream-json"


class BudgetsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[budgets]``: spending limits for the whole home (USD; None: no limit)."""

    daily_usd: Annotated[float, Meta(gt=0)] | None = None


class Config(msgspec.Struct, kw_only=True):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    agents: dict[str, str] = msgspec.field(default_factory=dict)
    queues: dict[str, QueueConfig] = msgspec.field(default_factory=dict)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    schedules: dict[str, ScheduleConfig] = msgspec.field(default_factory=dict)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    llm: LlmConfig = msgspec.field(default_factory=LlmConfig)
    tools: dict[str, str] = msgspec.field(default_factory=dict)
    cli_agents: dict[str, CliAgentConfig] = msgspec.field(default_factory=dict)
    budgets: BudgetsConfig = msgspec.field(default_factory=BudgetsConfig)


ENV_PREFIX = "ATHENA_"


def env_name(key: str) -> str:
    """The environment variable of a ``[daemon]`` key: lease -> ATHENA_LEASE."""
    return ENV_PREFIX + key.upper()


def load_config(home: Home, environ: Mapping[str, str] | None = None) -> Config:
    """``athena.toml`` (missing = defaults) with ``ATHENA_*`` variables laid over it.

    A bad file or variable is a ConfigError naming it.
    """
    config = _read_file(home)
    overrides = env_overrides(os.environ if environ is None else environ)
    if overrides:
        config = msgspec.structs.replace(
            config, daemon=msgspec.structs.replace(config.daemon, **overrides)
        )
    config.daemon.check_sizes()
    if config.daemon.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError("synchronous must be NORMAL or FULL.")
    return config


def _read_file(home: Home) -> Config:
    try:
        raw: dict[str, Any] = tomllib.loads(home.config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{home.config_path} is not valid TOML: {exc}.") from None
    _lift_database_keys(raw, home)
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{home.config_path}: {exc}.") from None
    for name, target in config.agents.items():
        if ":" not in target:
            raise ConfigError(
                f'{home.config_path}: agent {name!r} must be "module:object", not {target!r}.'
            )
    if config.daemon.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"{home.config_path}: synchronous must be NORMAL or FULL.")
    try:
        _check_sections(config)
    except (InvalidInput, ConfigError) as exc:
        raise ConfigError(f"{home.config_path}: {exc.message}") from None
    return config


def _check_sections(config: Config) -> None:
    """Values msgspec's types cannot check: sizes, rates, durations, schedules."""
    config.daemon.check_sizes()
    for name, queue in config.queues.items():
        check_queue_name(name, "[queues] section")
        if queue.rate is not None:
            parse_rate(queue.rate, f"[queues.{name}] rate")
    config.retention.ages()
    config.retention.session_age()
    for name, target in config.tools.items():
        if ":" not in target:
            raise ConfigError(f'[tools] {name!r} must be "module:function", not {target!r}.')
    if config.llm.api_key_env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", config.llm.api_key_env):
        raise ConfigError(
            f"[llm] api_key_env {config.llm.api_key_env!r} must name an environment variable "
            "(the key itself never goes in athena.toml)."
        )
    for name, agent in config.cli_agents.items():
        if agent.format not in CLI_AGENT_FORMATS:
            raise ConfigError(
                f"[cli_agents.{name}] format {agent.format!r} is not one of "
                f"{', '.join(CLI_AGENT_FORMATS)}."
            )
        if not agent.command:
            raise ConfigError(f"[cli_agents.{name}] command must name a program.")
    for name, schedule in config.schedules.items():
        check_queue_name(name, "[schedules] section")
        check_queue_name(schedule.queue, f"[schedules.{name}] queue")
        if (schedule.cron is None) == (schedule.every is None):
            raise ConfigError(f"[schedules.{name}] needs exactly one of cron and every.")
        if schedule.every is not None:
            every_s = parse_duration(schedule.every, f"[schedules.{name}] every")
            if every_s < 1:
                raise ConfigError(
                    f"[schedules.{name}] every {schedule.every!r} is too short: at least 1s."
                )
            if every_s > MAX_EVERY_S:
                raise ConfigError(
                    f"[schedules.{name}] every {schedule.every!r} is too long: at most 366d."
                )
        elif schedule.cron is not None:
            from croniter import CroniterError, croniter  # only homes with schedules pay

            if not croniter.is_valid(schedule.cron):
                raise ConfigError(
                    f"[schedules.{name}] cron {schedule.cron!r} is not a cron expression "
                    '(five fields, like "*/15 * * * *").'
                )
            try:
                croniter(schedule.cron).get_next(float)
            except CroniterError:
                raise ConfigError(
                    f"[schedules.{name}] cron {schedule.cron!r} never matches a date, "
                    "so it would never run."
                ) from None
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"[schedules.{name}] timezone {schedule.timezone!r} is not a known time zone."
            ) from None


DATABASE_KEYS = ("database_url", "database_schema", "poll_interval")


def _lift_database_keys(raw: dict[str, Any], home: Home) -> None:
    """The database settings may stand at the top of athena.toml, or under [daemon]."""
    daemon = raw.setdefault("daemon", {})
    if not isinstance(daemon, dict):
        return  # msgspec names the mistake
    for key in DATABASE_KEYS:
        if key in raw:
            if key in daemon and daemon[key] != raw[key]:
                raise ConfigError(
                    f"{home.config_path}: {key} is set both at the top and under [daemon]."
                )
            daemon[key] = raw.pop(key)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``[daemon]`` settings set in the environment, checked and typed."""
    found: dict[str, Any] = {}
    for key in DaemonConfig.__struct_fields__:
        name = env_name(key)
        text = environ.get(name, "").strip()
        if not text:
            continue
        try:
            typed = msgspec.convert({key: text}, DaemonConfig, strict=False)
            typed.check_sizes()
        except (msgspec.ValidationError, ConfigError) as exc:
            raise ConfigError(f"{name}={text!r} is not valid: {str(exc).rstrip('.')}.") from None
        found[key] = getattr(typed, key)
    return found


def apply_overrides(config: Config, overrides: dict[str, object]) -> Config:
    """The config with command-line settings (``[daemon]`` keys) laid over it."""
    if not overrides:
        return config
    daemon = msgspec.structs.replace(config.daemon, **overrides)
    daemon.check_sizes()
    return msgspec.structs.replace(config, daemon=daemon)
