"""Exceptions raised by Athena. Each subclass's docstring is its default message."""

from __future__ import annotations


class AthenaError(Exception):
    """Athena failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(AthenaError):
    """The input is not valid."""


class JobNotFound(AthenaError):
    """No job has this id."""


class UnknownParent(InvalidInput):
    """A dependency names a job that does not exist."""


class InvalidTransition(AthenaError):
    """The job is not in a state that allows this."""


class StaleFence(AthenaError):
    """This worker no longer holds the job (it was reclaimed by another worker)."""


class JobFailed(AthenaError):
    """A job failed or was cancelled."""

    def __init__(self, message: str, job_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.job_ids = job_ids or []


class RateLimited(AthenaError):
    """The model provider refused for now; try again later.

    Raised by an agent (or the model client it uses): the job goes back to pending
    for ``retry_after`` seconds without spending an attempt, and its queue takes no
    other job before then.
    """

    def __init__(self, retry_after: float = 60.0, message: str | None = None) -> None:
        try:
            seconds = float(retry_after)
        except (TypeError, ValueError):
            raise InvalidInput(f"retry_after {retry_after!r} is not a number of seconds.") from None
        if not 0 <= seconds <= 86400:
            raise InvalidInput(f"retry_after {retry_after!r} must be between 0 s and a day.")
        super().__init__(message or f"rate limited by the provider; retry after {seconds:g} s")
        self.retry_after = seconds


class ApprovalRejected(AthenaError):
    """A person rejected what the agent asked to do.

    ``ctx.request_approval`` raises it on a rejection; an agent may catch it and decide
    what to do instead. Uncaught, the job fails with the note (no retry).
    """

    def __init__(self, note: str | None = None) -> None:
        super().__init__(f"rejected: {note}" if note else "rejected")
        self.note = note


class StepsChanged(AthenaError):
    """The agent's steps changed on replay."""


class StepFailed(AthenaError):
    """A step failed when it first ran; replaying it raises the recorded error again."""

    def __init__(self, name: str, error_type: str | None, error: str | None) -> None:
        super().__init__(f"step {name!r} failed: {error or error_type or 'error'}")
        self.step = name
        self.error_type = error_type
        self.error = error


class BudgetExceeded(AthenaError):
    """A budget is spent: no further model call is made."""


class FinalFailure(AthenaError):
    """The job cannot succeed as submitted: it fails without a retry.

    Raise it (or a subclass) from an agent when another attempt would meet the same
    answer: a malformed payload, a provider that refuses the key or the model.
    """


class ModelRefused(FinalFailure):
    """The model provider refused the request for good (a bad key, an unknown model)."""


class WaitTimeout(AthenaError, TimeoutError):
    """Timed out waiting for jobs to finish."""


class DatabaseBusy(AthenaError):
    """The database stayed locked by another process for too long."""


class WriteFailed(AthenaError):
    """Athena could not write (the disk is full, or refused the write); what was stored
    before is unchanged."""


class DiskFull(WriteFailed, DatabaseBusy):
    """athena.db was not changed because the disk holding it is full.

    Also a DatabaseBusy: like a lock held too long it passes, so the daemon's loops
    (the supervisor's, a worker's claims and reports) wait it out and retry instead of
    stopping; a command or an API call reports it.
    """


class DatabaseUnusable(AthenaError):
    """athena.db cannot be opened as an SQLite database."""


class ConfigError(AthenaError):
    """The configuration is not valid."""


class DaemonError(AthenaError):
    """The daemon could not do what was asked."""
