"""The shipped systemd unit says what the daemon needs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "athenad.service"


def read_unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_unit_has_the_service_contract():
    service = read_unit()["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith("athenad start --foreground")
    assert "HUP" in service["ExecReload"]
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > 30  # above the default drain timeout
    assert service["Restart"] == "on-failure"
    assert "WatchdogSec" in service
    assert service["Environment"].startswith("ATHENA_HOME=") or "ATHENA_HOME" in UNIT.read_text()
    assert service["WorkingDirectory"] == "/var/lib/athena"
    assert service["User"] == "athena"
    for key in ("NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "PrivateTmp"):
        assert key in service
    assert service["ReadWritePaths"] == "/var/lib/athena"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # verify checks that ExecStart exists; point it at a binary every machine has.
    text = UNIT.read_text().replace("/usr/local/bin/athenad", "/bin/true")
    unit = tmp_path / "athenad.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "athenad.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
