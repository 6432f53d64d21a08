"""Coding agents' events as session messages and usage, and the cli-agent's command
lines, without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from athenad.config import CliAgentConfig
from athenad.errors import InvalidInput
from workers.agents.agent_events import (
    ClaudeStreamParser,
    CodexParser,
    TextParser,
    Usage,
    block_entries,
)
from workers.agents.cli_agent import make_plan


def line(event: dict) -> bytes:
    return json.dumps(event).encode()


def test_claude_result_with_model_usage_records_each_model_main_one_last():
    parser = ClaudeStreamParser("claude")
    parser.feed(line({"type": "system", "subtype": "init", "model": "claude-main"}))
    model_usage = {
        "claude-main": {
            "inputTokens": 10,
            "cacheReadInputTokens": 90,
            "outputTokens": 5,
            "costUSD": 0.02,
        },
        "claude-haiku": {"inputTokens": 3, "outputTokens": 1, "costUSD": 0.001},
    }
    parsed = parser.feed(line({"type": "result", "result": "ok", "modelUsage": model_usage}))
    assert parsed.usage == [Usage("claude-haiku", 3, 1, 0.001), Usage("claude-main", 100, 5, 0.02)]
    assert parser.final == "ok" and parser.error is None
    assert parser.finish().usage == []


def test_claude_error_result_and_usage_of_a_stream_cut_short():
    parser = ClaudeStreamParser("claude")
    usage = {"input_tokens": 2, "cache_read_input_tokens": 8, "output_tokens": 3}
    for block in (
        {"type": "text", "text": "a"},
        {"type": "tool_use", "id": "t", "name": "X", "input": {}},
    ):
        message = {"id": "m1", "model": "claude-x", "content": [block], "usage": usage}
        parser.feed(line({"type": "assistant", "message": message}))
    # The same message twice (one event per block) is counted once.
    assert parser.finish().usage == [Usage("claude-x", 10, 3)]
    parser.feed(line({"type": "result", "subtype": "error_max_turns", "is_error": True}))
    assert parser.error == "claude reported error_max_turns: a"


def test_content_blocks_of_every_kind():
    entries = block_entries(
        "user",
        [
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [{"type": "text", "text": "x"}],
            },
            {
                "type": "tool_result",
                "tool_use_id": "t2",
                "content": [{"type": "image", "source": {}}],
            },
            {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
        ],
    )
    assert [(e.role, e.metadata["kind"]) for e in entries] == [
        ("tool", "tool_result"),
        ("tool", "tool_result"),
        ("user", "raw"),
    ]
    assert entries[0].content == "x"
    assert json.loads(entries[1].content) == [{"type": "image", "source": {}}]
    assert entries[2].metadata["block"] == "image"


def test_codex_events_of_earlier_versions_and_failures():
    parser = CodexParser("gpt-x")
    parsed = parser.feed(
        line({"id": "0", "msg": {"type": "token_count", "input_tokens": 7, "output_tokens": 2}})
    )
    assert parsed.usage == [Usage("gpt-x", 7, 2)]
    parser.feed(line({"id": "1", "msg": {"type": "agent_message", "message": "hello"}}))
    assert parser.final == "hello"
    parsed = parser.feed(
        line({"type": "item.completed", "item": {"id": "i", "type": "todo_list", "items": []}})
    )
    assert parsed.entries[0].metadata == {"kind": "raw", "event": "item:todo_list"}
    failed = {
        "id": "c",
        "type": "command_execution",
        "command": "false",
        "aggregated_output": "",
        "exit_code": 1,
    }
    parsed = parser.feed(line({"type": "item.completed", "item": failed}))
    assert [e.metadata["kind"] for e in parsed.entries] == ["tool_use", "tool_result"]
    assert parsed.entries[1].metadata["is_error"] is True
    parser.feed(line({"type": "turn.failed", "error": {"message": "quota"}}))
    assert parser.error == "quota"
    assert parser.feed(b"   ").entries == []


def test_text_output_is_the_answer():
    parser = TextParser("tool")
    for part in (b"first", b"second", b""):
        assert parser.feed(part).entries == []
    entries = parser.finish().entries
    assert [(e.role, e.content) for e in entries] == [("assistant", "first\nsecond")]
    assert parser.final == "first\nsecond"


TEMPLATES = {
    "mine": CliAgentConfig(command=["agent", "--model={model}", "--dir", "{cwd}", "{prompt}"]),
    "claude": CliAgentConfig(command=["my-claude", "{prompt}"], format="text"),
}


def test_command_lines(tmp_path: Path):
    home = tmp_path
    plan = make_plan(
        {"command": "codex", "prompt": "p", "model": "m", "args": ["--full-auto"]}, {}, home
    )
    assert plan.argv == ["codex", "exec", "--json", "--model", "m", "--full-auto", "p"]
    assert (plan.format, plan.cwd) == ("codex-json", str(home))
    plan = make_plan(
        {"command": "mine", "prompt": "{model}", "model": "m", "cwd": "."}, TEMPLATES, home
    )
    assert plan.argv == ["agent", "--model=m", "--dir", str(home), "{model}"]
    # A template of the same name replaces a built-in.
    assert make_plan({"command": "claude", "prompt": "p"}, TEMPLATES, home).argv == [
        "my-claude",
        "p",
    ]
    plan = make_plan({"argv": ["x", "-y"], "args": ["z"]}, {}, home)
    assert (plan.argv, plan.format, plan.prompt) == (["x", "-y", "z"], "text", None)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("text", "cli-agent needs a JSON object"),
        ({"prompt": "p"}, 'exactly one of "command"'),
        ({"command": "claude"}, 'cli-agent needs a "prompt" for claude.'),
        (
            {"command": "mine", "prompt": "p"},
            '[cli_agents.mine] uses {model} but the payload has no "model".',
        ),
        ({"command": "claude", "prompt": "p", "format": "text"}, '"format" only with "argv"'),
        ({"argv": ["x"], "format": "xml"}, "format 'xml' is not one of"),
        ({"argv": "x"}, "argv must be a list of strings"),
        (
            {"command": "claude", "prompt": "p", "cwd": "nowhere"},
            "cwd 'nowhere' is not a directory.",
        ),
        ({"command": "claude", "prompt": ""}, "prompt must be non-empty text"),
    ],
)
def test_bad_payloads_are_one_sentence(tmp_path: Path, payload, message):
    with pytest.raises(InvalidInput) as caught:
        make_plan(payload, TEMPLATES, tmp_path)
    assert message in caught.value.message
