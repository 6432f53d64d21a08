"""What the web app serves and what it allows: one value built by the command."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.paths import Home


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """The home and its database settings, and whether actions are on.

    Actions need both ``allow_actions`` and a non-empty ``token``: a flag alone must
    never open a write path to whoever reaches the port.
    """

    home: Home
    daemon: DaemonConfig
    allow_actions: bool = False
    token: str = ""
    daily_usd: float | None = None  # [budgets] daily_usd, for /api/stats
    poll_s: float = 1.0  # how often a live stream looks for changes
    # Host header names answered; None answers any. A server on loopback names only
    # loopback, so a web page whose DNS name is rebound to 127.0.0.1 reads nothing.
    allowed_hosts: frozenset[str] | None = None

    @property
    def actions_enabled(self) -> bool:
        return self.allow_actions and bool(self.token)
