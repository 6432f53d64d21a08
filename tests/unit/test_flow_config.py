"""The flow-control sections of athena.toml: queues, limits, schedules, retention."""

from __future__ import annotations

import pytest

from athenad.config import load_config, parse_rate
from athenad.errors import ConfigError, InvalidInput
from athenad.util.timefmt import parse_duration

FULL = """
[daemon]
log_max_bytes = "5MB"
log_backups = 3
job_log_max_bytes = "64KB"

[queues.models]
concurrency = 4
rate = "120/m"
priority = 5

[limits]
key_concurrency = 2

[schedules.nightly]
cron = "0 3 * * *"
agent = "echo"
payload = {report = true}
timezone = "Europe/Paris"

[schedules.often]
every = "10m"
agent = "echo"
queue = "models"
catch_up = true

[retention]
completed = "14d"
failed = "30d"
sessions = "90d"
"""


def test_every_section_is_read(home):
    home.config_path.write_text(FULL)
    config = load_config(home, {})
    assert config.daemon.log_backups == 3 and config.daemon.check_sizes() is None
    models = config.queues["models"]
    assert (models.concurrency, models.rate, models.priority) == (4, "120/m", 5)
    assert config.limits.key_concurrency == 2
    assert config.schedules["nightly"].payload == {"report": True}
    assert config.schedules["often"].catch_up and config.schedules["often"].queue == "models"
    assert config.retention.ages() == {"completed": 14 * 86400.0, "failed": 30 * 86400.0}
    assert config.retention.session_age() == 90 * 86400.0


def test_defaults_leave_everything_unlimited(home):
    config = load_config(home, {})
    assert config.queues == {} and config.schedules == {}
    assert config.retention.ages() == {} and config.retention.session_age() is None
    assert config.limits.key_concurrency == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[queues.q]\nrate = "fast"\n', "[queues.q] rate 'fast' is not a rate"),
        ("[queues.q]\nconcurrency = 0\n", "concurrency"),
        ('[queues."bad name"]\n', "[queues] section name 'bad name' is not valid"),
        ('[retention]\ncompleted = "soon"\n', "[retention] completed 'soon' is not a duration"),
        ('[schedules.s]\nagent = "echo"\n', "[schedules.s] needs exactly one of cron and every"),
        ('[schedules.s]\nagent = "echo"\ncron = "61 * * * *"\n', "is not a cron expression"),
        ('[schedules.s]\nagent = "echo"\nevery = "1h"\ntimezone = "Mars/Base"\n', "time zone"),
        ('[daemon]\nlog_max_bytes = "lots"\n', "is not a size"),
    ],
)
def test_a_bad_value_is_one_clear_error(home, text, says):
    home.config_path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(home, {})
    assert says in caught.value.message
    assert str(home.config_path) in caught.value.message


def test_rates_and_durations():
    assert parse_rate("60/m") == (60, 60.0)
    assert parse_rate("5 / s") == (5, 1.0)
    assert parse_rate("1000/hour") == (1000, 3600.0)
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200
    assert parse_duration(1.5) == 1.5
    for bad in ("0/m", "60/d", "x"):
        with pytest.raises(InvalidInput):
            parse_rate(bad)
    for bad in ("7", "-1m", "0s", "nanm"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
