"""Which agents exist and how to load them.

Agents are registered by name in two places: Python entry points in the group
``athena.agents`` (the built-ins are registered this way too), and the ``[agents]``
table of the home's ``athena.toml`` (``name = "module:object"``), whose modules are
imported with the home on ``sys.path``. The config wins over an entry point of the
same name.
"""

from __future__ import annotations

import importlib
import sys

from athenad.config import Config
from athenad.errors import AthenaError
from athenad.paths import Home

ENTRY_POINT_GROUP = "athena.agents"
BUILTIN_AGENTS = {
    "echo": "workers.agents.builtin:echo",
    "sleep": "workers.agents.builtin:sleep",
    "shell": "workers.agents.builtin:shell",
    "cli-agent": "workers.agents.cli_agent:cli_agent",
    "llm": "workers.agents.llm:llm",
}


class AgentLoadError(AthenaError):
    """An agent could not be loaded."""


def known_agents(config: Config) -> dict[str, str]:
    """{name: "module:object"} of every registered agent, without importing any."""
    # Imported here: reading installed packages' metadata costs a CLI ~20 ms at start.
    from importlib.metadata import entry_points

    agents = dict(BUILTIN_AGENTS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        agents[entry.name] = entry.value
    agents.update(config.agents)
    return agents


def load_target(target: str, home: Home | None = None) -> object:
    """Import ``"module:object"`` (dotted object paths allowed)."""
    if home is not None and str(home.root) not in sys.path:
        sys.path.insert(0, str(home.root))
    module_name, _, attribute = target.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # an agent module may raise anything while importing
        raise AgentLoadError(f"cannot load agent {target!r}: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise AgentLoadError(f"agent {target!r} is not callable.")
    return obj


class AgentRegistry:
    """Loads agents on first use and keeps them for the life of the worker."""

    def __init__(self, home: Home, config: Config) -> None:
        self.home = home
        self.targets = known_agents(config)
        self._loaded: dict[str, object] = {}

    def preload(self, names) -> None:
        """Import these agents now, so a broken agent module stops the worker at boot."""
        for name in names:
            self.get(name)

    def get(self, name: str) -> object:
        if name not in self._loaded:
            target = self.targets.get(name)
            if target is None:
                known = ", ".join(sorted(self.targets))
                raise AgentLoadError(f"no agent named {name!r} is registered; known: {known}.")
            self._loaded[name] = load_target(target, self.home)
        return self._loaded[name]


def run_agent(agent: object, ctx: object) -> object:
    """Call a function agent with the context; instantiate a class agent and run it."""
    if isinstance(agent, type):
        instance = agent()
        runner = getattr(instance, "run", None) or instance
        return runner(ctx)
    return agent(ctx)  # type: ignore[operator]
