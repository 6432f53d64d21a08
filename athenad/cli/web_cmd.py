"""``athenactl web``: serve the dashboard and the JSON API of a home."""

from __future__ import annotations

import ipaddress
import os
import socket

import click

from athenad.cli.common import fail, handle_errors, home_option, resolve_home
from athenad.config import load_config

DEFAULT_BIND = "127.0.0.1:8765"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# An open event stream would hold Ctrl-C until the browser left; this caps the wait.
SHUTDOWN_GRACE_S = 2


def _loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def parse_bind(text: str, option: str = "--bind") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6) as host and port; bad input is one sentence."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(
            f"{option} must be HOST:PORT with a port from 1 to 65535 (like {DEFAULT_BIND}), "
            f"not {text!r}."
        )
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            fail(f"{option} needs an IP address or localhost as its host, not {host!r}.")
    return host, int(port_text)


@click.command("web")
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen; anything but loopback exposes the jobs to the network.",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Allow submit, cancel, retry, approve, pause ... to holders of ATHENA_WEB_TOKEN.",
)
@home_option
@handle_errors
def web_command(bind: str, allow_actions: bool, home: str | None) -> None:
    """Serve a web dashboard and a JSON API of the home's jobs (read-only by default).

    Pages: the overview, jobs, a job with its log following live, a workflow's graph,
    failed jobs by error, and sessions; the JSON API is under /api/ (described at
    /api/openapi.json). Actions need --allow-actions and a token in ATHENA_WEB_TOKEN:
    the API takes it as a bearer header, the pages through a login form.
    """
    host, port = parse_bind(bind)
    try:
        import uvicorn

        from athenad.web.app import build_app
        from athenad.web.settings import WebSettings
    except ImportError as exc:
        fail(f"athenactl web needs the web extra ({exc.name} is missing): install athena[web].")
    from athenad.store.backend import has_database

    where = resolve_home(home)
    config = load_config(where)
    if not has_database(where, config.daemon):
        fail(
            f"{where.root} has no athena.db: submit a job or start athenad there first "
            "(or pass --home / set ATHENA_HOME)."
        )
    token = os.environ.get("ATHENA_WEB_TOKEN", "")
    if allow_actions and not token:
        fail("--allow-actions needs a token in ATHENA_WEB_TOKEN.")
    settings = WebSettings(
        home=where,
        daemon=config.daemon,
        allow_actions=allow_actions,
        token=token,
        daily_usd=config.budgets.daily_usd,
        allowed_hosts=LOOPBACK_NAMES | {host} if _loopback(host) else None,
    )
    sock = _listen(host, port, bind)
    shown = f"[{host}]" if ":" in host else host
    mode = "actions on (token required)" if settings.actions_enabled else "read-only"
    click.echo(f"athena web on http://{shown}:{port}/ ({mode}); Ctrl-C stops it.", err=True)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(settings), log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S
        )
    )
    server.run(sockets=[sock])


def _listen(host: str, port: int, bind: str) -> socket.socket:
    """The listening socket, bound here so a taken port is one clear sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {bind}: {exc.strerror or exc}.")
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
