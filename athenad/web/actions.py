"""The changes the dashboard can make, shared by the API and the pages' forms.

Each returns what the matching ``athenactl ... --json`` prints.
"""

from __future__ import annotations

import json
from typing import Any

from athenad.errors import InvalidInput
from athenad.web.data import store
from athenad.web.settings import WebSettings

JOB_ACTIONS = ("cancel", "retry", "approve", "reject", "send")
QUEUE_ACTIONS = ("pause", "resume")


def job_action(web: WebSettings, job_id: str, action: str, form: dict[str, Any]) -> dict[str, Any]:
    """Run one job action; ``form`` carries ``note`` (approve/reject) or ``key`` and
    ``payload`` (send)."""
    with store(web) as queue:
        if action == "cancel":
            return {"id": job_id, "status": queue.cancel(job_id)}
        if action == "retry":
            return {"id": job_id, "status": queue.retry(job_id)}
        if action in ("approve", "reject"):
            note = form.get("note") or None
            decision = queue.decide_approval(job_id, action == "approve", note)
            return {"id": job_id, "decision": decision, "status": "pending"}
        if action == "send":
            from athenad.store.steps import step_store

            key = str(form.get("key") or "")
            payload = _payload(form.get("payload"))
            outcome = step_store(queue).send_event(job_id, key, payload)
            return {"id": job_id, "key": key, "outcome": outcome}
    raise InvalidInput(f"unknown action {action!r}; one of {', '.join(JOB_ACTIONS)}.")


SUBMIT_MAX = 1000


def submit(web: WebSettings, body: Any) -> list[dict[str, Any]]:
    """Submit one task or ``{"tasks": [...]}`` (``after`` may name an earlier task of the
    list by its index): ``[{"id", "duplicate"}]``, as ``athenactl submit --json`` says."""
    from athenad.config import load_config
    from workers.registry import BUILTIN_AGENTS, known_agents

    tasks = body.get("tasks") if isinstance(body, dict) and "tasks" in body else [body]
    if not isinstance(tasks, list) or not 1 <= len(tasks) <= SUBMIT_MAX:
        raise InvalidInput(f"tasks must be a list of 1 to {SUBMIT_MAX} tasks.")
    config = load_config(web.home)
    agents: dict[str, str] | None = None
    for task in tasks:
        kind = task.get("type") if isinstance(task, dict) else None
        if isinstance(kind, str) and kind not in BUILTIN_AGENTS and kind not in config.agents:
            agents = agents if agents is not None else known_agents(config)
            if kind not in agents:
                names = ", ".join(sorted(agents))
                raise InvalidInput(f"unknown job type {kind!r}; known types: {names}.")
    with store(web) as queue:
        outcomes = queue.enqueue(tasks)
    return [{"id": outcome.id, "duplicate": outcome.duplicate} for outcome in outcomes]


BULK_ACTIONS = ("cancel", "retry")
BULK_MAX = 500


def bulk_action(web: WebSettings, ids: list[str], action: str) -> list[dict[str, Any]]:
    """Cancel or retry each job; a job that refuses gets ``{"id", "error"}`` and the
    others go on."""
    from athenad.errors import AthenaError

    if action not in BULK_ACTIONS:
        raise InvalidInput(f"a bulk action is one of {', '.join(BULK_ACTIONS)}, not {action!r}.")
    if not ids or len(ids) > BULK_MAX:
        raise InvalidInput(f"select from 1 to {BULK_MAX} jobs, not {len(ids)}.")
    results = []
    with store(web) as queue:
        for job_id in ids:
            try:
                change = queue.cancel if action == "cancel" else queue.retry
                results.append({"id": job_id, "status": change(job_id)})
            except AthenaError as exc:
                results.append({"id": job_id, "error": str(exc)})
    return results


def _payload(value: Any) -> Any:
    """A form's payload is JSON text (empty: none); an API body's is the value itself."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the payload is not JSON: {exc}.") from None


def queue_action(web: WebSettings, name: str, action: str) -> dict[str, Any]:
    if action not in QUEUE_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; one of {', '.join(QUEUE_ACTIONS)}.")
    with store(web) as queue:
        queue.pause_queue(name, action == "pause")
    return {"queue": name, "state": "paused" if action == "pause" else "open"}
