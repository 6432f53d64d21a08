"""``athenactl schedule list``: text and JSON, with and without athena.db, and one
sentence for a bad schedule."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner, Result

from athenad.cli.ctl import main
from athenad.cli.schedule_cmd import schedule_group
from athenad.config import ScheduleConfig
from athenad.paths import Home
from athenad.store.schedules import enqueue_due, slot_store
from athenad.store.sqlite.queue import JobQueue

SCHEDULES = (
    '[schedules.tick]\nevery = "10m"\nagent = "echo"\nqueue = "models"\n\n'
    '[schedules.nightly]\ncron = "0 3 * * *"\nagent = "echo"\ntimezone = "Europe/Paris"\n'
    "catch_up = true\n"
)


def schedule(home: Home, *args: str) -> Result:
    return CliRunner().invoke(schedule_group, [*args, "--home", str(home.root)])


def test_no_schedules_says_where_to_add_them(home: Home):
    result = schedule(home, "list")
    assert result.exit_code == 0
    assert result.output == f"no schedules: add [schedules.NAME] to {home.config_path}\n"
    assert json.loads(schedule(home, "list", "--json").output) == []


def test_schedules_are_listed_before_any_database_exists(tmp_path):
    home = Home.resolve(tmp_path / "fresh").ensure()
    home.config_path.write_text(SCHEDULES)
    rows = json.loads(schedule(home, "list", "--json").output)
    assert [row["name"] for row in rows] == ["nightly", "tick"]
    assert all(row["last_slot"] is None for row in rows)
    assert not home.db_path.exists()  # listing creates nothing
    text = schedule(home, "list").output.splitlines()
    assert text[0].split() == ["schedule", "when", "timezone", "queue", "agent", "last", "slot",
                               "job", "next", "run"]  # fmt: skip
    assert "0 3 * * * (catch up)" in text[1] and "Europe/Paris" in text[1]
    assert "every 10m" in text[2] and "models" in text[2]


def test_the_last_slot_and_its_job_come_from_the_database(home: Home, queue: JobQueue):
    home.config_path.write_text(SCHEDULES)
    slots = slot_store(queue)
    slot = slots.now().replace(second=0, microsecond=0) + dt.timedelta(minutes=10)
    slot = slot.replace(minute=slot.minute // 10 * 10)
    slots.state("tick")
    tick = ScheduleConfig(agent="echo", every="10m", queue="models")
    (item,) = enqueue_due(slots, "tick", tick, slot).enqueued
    rows = {row["name"]: row for row in json.loads(schedule(home, "list", "--json").output)}
    assert rows["tick"]["last_slot"] == slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows["tick"]["last_job_id"] == item.job_id
    assert item.job_id in schedule(home, "list").output


def test_a_bad_schedule_is_one_sentence_and_exit_1(home: Home):
    home.config_path.write_text('[schedules.tick]\nevery = "0.2s"\nagent = "echo"\n')
    result = schedule(home, "list")
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "[schedules.tick] every '0.2s' is too short: at least 1s."
    )
    assert len(result.output.strip().splitlines()) == 1


def test_athenactl_help_lists_the_schedule_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.strip().startswith("schedule"))
    assert "Schedules from athena.toml" in line
