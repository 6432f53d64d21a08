"""Secrets of the environment are replaced in what workers store."""

from __future__ import annotations

from athenad.util.redact import REDACTED, Redactor


def test_values_of_secret_named_variables_are_replaced() -> None:
    redactor = Redactor(
        {
            "OPENAI_API_KEY": "sk-abcdefgh123",
            "GITHUB_TOKEN": "ghp_secretvalue",
            "DB_PASSWORD": "hunter2hunter2",
            "HOME": "/home/someone/long/path",
        }
    )
    text = "key sk-abcdefgh123 token ghp_secretvalue pw hunter2hunter2 at /home/someone/long/path"
    assert redactor.text(text) == (
        f"key {REDACTED} token {REDACTED} pw {REDACTED} at /home/someone/long/path"
    )


def test_short_values_and_other_details_are_left_alone() -> None:
    redactor = Redactor({"FEATURE_TOKEN": "1", "API_KEY": "longer-secret-value"})
    assert redactor.text("1 of 1") == "1 of 1"
    assert redactor.detail(("failed: longer-secret-value", "tb longer-secret-value")) == (
        f"failed: {REDACTED}",
        f"tb {REDACTED}",
    )
    assert redactor.detail(3.5) == 3.5


def test_a_secret_containing_another_is_replaced_whole() -> None:
    redactor = Redactor({"A_KEY": "abcdefgh", "B_KEY": "abcdefgh-and-more"})
    assert redactor.text("x abcdefgh-and-more y") == f"x {REDACTED} y"
