"""A stand-in for ``claude -p PROMPT --output-format stream-json --verbose``: it writes
the events Claude Code writes, one JSON object a line, for tests.

The prompt chooses what it does:

* ``fail``: a line on stderr, exit status 3;
* ``sleep PIDFILE``: start a grandchild, write both pids to PIDFILE, write the first
  events, then sleep (for timeout and cancel tests);
* anything else: a short conversation (text, a tool use and its result, an event of
  a later version) and a result with usage and cost, the final text naming the prompt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SESSION = "5f1c7a52-0c4e-4a8b-9d36-fa6e2b1e0001"


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def assistant(message_id: str, content: list, model: str) -> dict:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100,
        "output_tokens": 7,
    }
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": None,
        "usage": usage,
    }
    return {
        "type": "assistant",
        "message": message,
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }


def main(argv: list[str]) -> int:
    prompt = argv[argv.index("-p") + 1]
    model = argv[argv.index("--model") + 1] if "--model" in argv else "claude-fake-1"
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    if prompt == "fail":
        sys.stderr.write("fake-claude: Invalid API key, please run /login\n")
        return 3
    emit(
        {
            "type": "system",
            "subtype": "init",
            "cwd": os.getcwd(),
            "session_id": SESSION,
            "tools": ["Bash", "Read"],
            "model": model,
            "permissionMode": "default",
        }
    )
    emit(assistant("msg_1", [{"type": "text", "text": "Let me look."}], model))
    if prompt.startswith("sleep "):
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(prompt.split(" ", 1)[1] + ".tmp", "w") as out:
            out.write(f"{os.getpid()} {helper.pid}\n")
        os.rename(prompt.split(" ", 1)[1] + ".tmp", prompt.split(" ", 1)[1])
        time.sleep(300)
        return 0
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
    emit(assistant("msg_1", [tool], model))
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "README.md\nsrc"}
    emit(
        {
            "type": "user",
            "message": {"role": "user", "content": [result]},
            "parent_tool_use_id": None,
            "session_id": SESSION,
        }
    )
    final = f"Done with: {prompt}"
    emit(assistant("msg_2", [{"type": "text", "text": final}], model))
    emit({"type": "fake_future_event", "detail": {"n": 1}})
    print("a line that is not JSON", flush=True)
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 12,
            "num_turns": 2,
            "result": final,
            "session_id": SESSION,
            "total_cost_usd": 0.0123,
            "usage": {
                "input_tokens": 20,
                "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": 200,
                "output_tokens": 30,
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
