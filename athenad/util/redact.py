"""Keeping secrets from the environment out of what Athena stores and logs.

A job's error is often what its agent or command printed, and a command that prints
``$OPENAI_API_KEY`` would put the key into the job's row, its log and ``athenactl
show``. Values of environment variables named like secrets are replaced wherever a
worker stores an error or a log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary words
SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|AUTH)$", re.IGNORECASE
)


class Redactor:
    """Replaces the values of secret-named environment variables in text."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        found = {
            value
            for name, value in environ.items()
            if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
        }
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted(found, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def detail(self, value: Any) -> Any:
        """Text, or the texts in a tuple (an error and its traceback), redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, tuple):
            return tuple(self.detail(part) for part in value)
        return value
