"""The host setting: it names the daemon in worker ids, so only its own pids count as local."""

from __future__ import annotations

import socket

import pytest

from athenad.config import load_config
from athenad.daemon.identity import is_local, make_worker_id, worker_host
from athenad.errors import ConfigError


def test_the_host_defaults_to_the_hostname_then_the_file_then_the_environment(home):
    assert load_config(home, {}).daemon.host == socket.gethostname()
    home.config_path.write_text('[daemon]\nhost = "from-file"\n')
    assert load_config(home, {}).daemon.host == "from-file"
    assert load_config(home, {"ATHENA_HOST": "host-a"}).daemon.host == "host-a"


def test_a_host_with_spaces_is_refused(home):
    with pytest.raises(ConfigError, match="ATHENA_HOST"):
        load_config(home, {"ATHENA_HOST": "two words"})


def test_worker_ids_carry_the_configured_host():
    worker_id = make_worker_id(123, 0, "host-a")
    assert worker_id == "host-a:123:0" and worker_host(worker_id) == "host-a"
    assert is_local(worker_id, "host-a")
    assert not is_local(worker_id, "host-b")
    assert not is_local(worker_id)  # the machine's own name is another host here
