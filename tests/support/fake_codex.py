"""A stand-in for ``codex exec --json [--model M] PROMPT``: it writes the events Codex
writes (thread, turn and item events, usage on turn.completed), for tests.

A prompt of ``fail`` reports a failed turn on stdout, a line on stderr, and exits 1.
"""

from __future__ import annotations

import json
import sys


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    assert argv[:2] == ["exec", "--json"], argv
    prompt = argv[-1]
    emit({"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"})
    emit({"type": "turn.started"})
    if prompt == "fail":
        emit({"type": "turn.failed", "error": {"message": "stream disconnected"}})
        sys.stderr.write("ERROR: stream disconnected before completion\n")
        return 1
    emit(
        {
            "type": "item.completed",
            "item": {"id": "item_0", "type": "reasoning", "text": "**Looking**"},
        }
    )
    command = {"id": "item_1", "type": "command_execution", "command": "bash -lc ls"}
    emit(
        {
            "type": "item.started",
            "item": {**command, "aggregated_output": "", "status": "in_progress"},
        }
    )
    emit(
        {
            "type": "item.updated",
            "item": {**command, "aggregated_output": "READ", "status": "in_progress"},
        }
    )
    done = {**command, "aggregated_output": "README.md\n", "exit_code": 0, "status": "completed"}
    emit({"type": "item.completed", "item": done})
    message = {"id": "item_2", "type": "agent_message", "text": f"Codex did: {prompt}"}
    emit({"type": "item.completed", "item": message})
    usage = {"input_tokens": 1200, "cached_input_tokens": 1000, "output_tokens": 80}
    emit({"type": "turn.completed", "usage": usage})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
