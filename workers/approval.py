"""Asking a person: an agent parks its job until someone approves or rejects.

``request_approval`` either returns the decision a person already gave to this very
question (the job was parked, decided, and is running again), or parks the job: it
raises :class:`AwaitingApproval`, which unwinds the agent like any interrupt, and the
worker records the question and frees itself. The agent runs again from its start
(with its latest checkpoint) once the decision is in.
"""

from __future__ import annotations

from typing import Any

import msgspec

from athenad.errors import ApprovalRejected
from workers.interrupts import WorkerInterrupt

APPROVED = "approved"
REJECTED = "rejected"


class Approval(msgspec.Struct, frozen=True):
    """A person's answer to the job's question."""

    decision: str  # "approved" or "rejected"
    note: str | None = None
    question: str | None = None

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED


class AwaitingApproval(WorkerInterrupt):
    """The agent asked a person; the job parks until they answer."""

    def __init__(self, question: str, data: Any = None, timeout_s: float | None = None) -> None:
        super().__init__(question)
        self.question = question
        self.data = data
        self.timeout_s = timeout_s


def given_answer(decision: str | None, note: str | None, question: str | None) -> Approval | None:
    """The decision the job was resumed with, if any."""
    if decision is None:
        return None
    return Approval(decision=decision, note=note, question=question)


def answer_or_park(
    answer: Approval | None, question: str, data: Any = None, timeout_s: float | None = None
) -> Approval:
    """The answer to ``question`` if one was given; raises ApprovalRejected for a
    rejection and AwaitingApproval (parking the job) when nobody answered it yet."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("request_approval needs a question: non-empty text.")
    if answer is None or answer.question != question:
        raise AwaitingApproval(question, data, timeout_s)
    if not answer.approved:
        raise ApprovalRejected(answer.note)
    return answer
