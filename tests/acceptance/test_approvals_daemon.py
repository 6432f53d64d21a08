"""Waiting for a person, as a user runs it: a job asks, parks without a worker, and
resumes with the answer given on the command line."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import cli, cli_json, submit, wait_status

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

AGENTS = textwrap.dedent(
    """
    from athenad import ApprovalRejected

    def deploy(ctx):
        if ctx.checkpoint:
            build = ctx.checkpoint.state["build"]  # resumed: the build is not redone
        else:
            build = {"builds": 1}
        answer = ctx.request_approval("deploy to production?", build, state={"build": build})
        return {"builds": build["builds"], "note": answer.note}

    def careful(ctx):
        try:
            ctx.request_approval("delete the old data?")
        except ApprovalRejected as rejected:
            return {"skipped": rejected.note}
        return {"deleted": True}
    """
)


@pytest.fixture
def approval_home(home):
    (home.root / "approvalagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[agents]\ndeploy = "approvalagents:deploy"\ncareful = "approvalagents:careful"\n'
    )
    return home


def test_approve_resumes_with_the_note_and_reject_fails_or_lets_the_agent_decide(
    approval_home, daemon_factory
):
    daemon_factory(workers=1)
    approved = submit(approval_home, "deploy")
    rejected = submit(approval_home, "deploy")
    decided = submit(approval_home, "careful")
    for job_id in (approved, rejected, decided):
        row = wait_status(approval_home, job_id, {"awaiting_approval"}, timeout=20)
        assert row["worker_pid"] is None and row["attempts"] == 0
    waiting = cli_json("athenactl", "jobs", "--status", "awaiting_approval", home=approval_home)
    assert {job["id"] for job in waiting} == {approved, rejected, decided}
    shown = cli_json("athenactl", "show", approved, home=approval_home)
    assert shown["approval_question"] == "deploy to production?"
    answer = cli_json("athenactl", "approve", approved, "--note", "go", home=approval_home)
    assert answer == {"id": approved, "decision": "approved", "status": "pending"}
    assert (
        cli("athenactl", "reject", rejected, "--note", "not today", home=approval_home).returncode
        == 0
    )
    assert (
        cli("athenactl", "reject", decided, "--note", "keep it", home=approval_home).returncode == 0
    )

    done = wait_status(approval_home, approved, {"completed", "failed"})
    # Built once: the resumed run found the checkpoint written before the wait.
    assert done["result"] == {"builds": 1, "note": "go"}
    assert done["checkpoint_iteration"] == 1 and done["attempts"] == 1
    failed = wait_status(approval_home, rejected, {"completed", "failed"})
    assert (failed["status"], failed["error"]) == ("failed", "rejected: not today")
    kept = wait_status(approval_home, decided, {"completed", "failed"})
    assert kept["result"] == {"skipped": "keep it"}

    again = cli("athenactl", "approve", approved, home=approval_home)
    assert again.returncode == 1
    assert "only a job awaiting approval can be approved" in again.stderr


def test_no_decision_in_time_counts_as_rejected(approval_home, daemon_factory):
    daemon_factory(workers=1)
    job_id = submit(approval_home, "careful", "--approval-timeout", "1s")
    wait_status(approval_home, job_id, {"awaiting_approval"}, timeout=20)
    done = wait_status(approval_home, job_id, {"completed", "failed"}, timeout=20)
    assert done["result"] == {"skipped": "no decision within the approval timeout"}
