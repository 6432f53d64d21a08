"""Tools for the ``llm`` agent: functions named in ``[tools]`` of athena.toml.

The model sees each tool as a JSON schema made from the function's signature and
docstring (``Args:`` or ``:param x:`` lines describe the parameters), or taken from
the function's own ``schema`` attribute: either the whole function object (``name``,
``description``, ``parameters``) or only its ``parameters``.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athenad.errors import FinalFailure

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_PARAM_LINE = re.compile(r"^\s*(?::param\s+)?\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns?|Raises|Yields|Examples?)\s*:\s*$")


class ToolError(FinalFailure):
    """A tool named in a job cannot be used."""


@dataclass(frozen=True)
class Tool:
    """A registered function and how it is described to the model."""

    name: str
    function: Callable[..., Any]
    schema: dict[str, Any]  # an OpenAI function object: name, description, parameters

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": self.schema}


def load_tools(names: list[str], registered: Mapping[str, str], home: Path) -> dict[str, Tool]:
    """The tools a job names, imported from ``[tools]`` (the home first on sys.path)."""
    tools: dict[str, Tool] = {}
    for name in names:
        target = registered.get(name)
        if target is None:
            known = ", ".join(sorted(registered)) or "none"
            raise ToolError(
                f"tool {name!r} is not registered in [tools] of athena.toml; registered: {known}."
            )
        function = _import(name, target, home)
        tools[name] = Tool(name, function, function_schema(name, function))
    return tools


def _import(name: str, target: str, home: Path) -> Callable[..., Any]:
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # a tool module may raise anything while importing
        raise ToolError(
            f"cannot load tool {name!r} ({target}): {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(obj):
        raise ToolError(f"tool {name!r} ({target}) is not callable.")
    return typing.cast(Callable[..., Any], obj)


def function_schema(name: str, function: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI function object describing ``function`` to the model."""
    description, param_docs = parse_docstring(inspect.getdoc(function) or "")
    explicit = getattr(function, "schema", None)
    if isinstance(explicit, dict):
        if "parameters" in explicit:
            return {"name": name, "description": description, **explicit}
        return {"name": name, "description": description, "parameters": explicit}
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # an annotation naming something the module cannot resolve
        raise ToolError(f"tool {name!r}: cannot read its annotations ({exc}).") from exc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            raise ToolError(
                f"tool {name!r}: parameter {param.name!r} cannot be given by name; "
                "tools take keyword arguments."
            )
        try:
            prop = json_schema(hints.get(param.name, Any))
        except TypeError as exc:
            raise ToolError(
                f"tool {name!r}: parameter {param.name!r} has {exc}; give the function a `schema`."
            ) from None
        if param.name in param_docs:
            prop["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = param.default.value if isinstance(param.default, enum.Enum) else param.default
            if _is_json(default):  # a default JSON cannot show is left unsaid
                prop["default"] = default
        properties[param.name] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"name": name, "description": description, "parameters": parameters}


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a type annotation; TypeError for one JSON cannot carry."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [json_schema(arg) for arg in args if arg is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1 and isinstance(options[0].get("type"), str) and nullable:
            return {**options[0], "type": [options[0]["type"], "null"]}
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    if annotation in (list, tuple, set) or origin in (list, tuple, set):
        item = json_schema(args[0]) if args and args[0] is not Ellipsis else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if annotation is dict or origin is dict:
        values = json_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    raise TypeError(f"type {annotation!r}, which has no JSON schema")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) of a Google- or Sphinx-style docstring."""
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    last: str | None = None
    for line in doc.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section, last = heading.group(1).lower(), None
            continue
        sphinx = line.strip().startswith(":param")
        if (section in ("args", "arguments", "parameters") or sphinx) and line.strip():
            match = _PARAM_LINE.match(line)
            if match and (sphinx or not line.startswith((" " * 8, "\t\t"))):
                last = match.group(1)
                params[last] = match.group(2).strip()
            elif last is not None:
                params[last] = f"{params[last]} {line.strip()}".strip()
            continue
        if section is None and not line.strip().startswith(":"):
            summary.append(line.strip())
    return " ".join(" ".join(summary).split()), params


def run_tool(tools: Mapping[str, Tool], name: str, arguments: str) -> dict[str, Any]:
    """Call a tool the model asked for; its answer (or what went wrong) as text.

    A tool's error goes back to the model as its result (``is_error``), so the model
    can correct its call; the job goes on.
    """
    tool = tools.get(name)
    if tool is None:
        return _error(f"there is no tool named {name!r}; the tools are: {', '.join(tools)}.")
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return _error(f"the arguments are not valid JSON ({exc}).")
    if not isinstance(args, dict):
        return _error("the arguments must be a JSON object.")
    try:
        value = tool.function(**args)
    except Exception as exc:  # the model reads it and may try again; the job goes on
        return _error(f"{type(exc).__name__}: {exc}")
    return {"content": value if isinstance(value, str) else json.dumps(value, default=str)}


def _error(message: str) -> dict[str, Any]:
    return {"content": f"error: {message}", "is_error": True}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
