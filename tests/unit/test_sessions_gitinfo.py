"""Git branch detection from .git/HEAD, worktrees and detached HEADs."""

from __future__ import annotations

from athenad.storage.sessions import SessionManager
from athenad.storage.sessions.gitinfo import branch_from_head, current_branch


def repo(root, head):
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text(head)
    return root


def test_branch_from_a_subdirectory(tmp_path):
    root = repo(tmp_path / "app", "ref: refs/heads/feature/login\n")
    (root / "src" / "deep").mkdir(parents=True)
    assert current_branch(root / "src" / "deep") == "feature/login"


def test_worktree_git_file_points_at_its_head(tmp_path):
    main = repo(tmp_path / "main", "ref: refs/heads/main\n")
    wt_git = main / ".git" / "worktrees" / "wt"
    wt_git.mkdir(parents=True)
    (wt_git / "HEAD").write_text("ref: refs/heads/topic\n")
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text("gitdir: ../main/.git/worktrees/wt\n")
    assert current_branch(worktree) == "topic"
    (worktree / ".git").write_text(f"gitdir: {wt_git}\n")
    assert current_branch(worktree) == "topic"
    assert current_branch(main) == "main"


def test_detached_head(tmp_path):
    sha = "3f2a9c0d1e4b5a6978877665544332211aabbccd"
    root = repo(tmp_path / "r", sha + "\n")
    assert current_branch(root) == "detached:3f2a9c0d1e4b"
    assert branch_from_head("garbage") is None


def test_outside_a_repository(tmp_path):
    assert current_branch(tmp_path) is None


def test_new_sessions_record_the_branch_of_their_directory(tmp_path):
    root = repo(tmp_path / "r", "ref: refs/heads/dev\n")
    manager = SessionManager(tmp_path / "home" / ".athena", cwd=root)
    session_id = manager.create_session("x")
    assert manager.get_session(session_id).git_branch == "dev"
    assert manager.resume_most_recent_session("dev") == session_id
    assert manager.create_session("y", git_branch="main") != session_id
    assert [s.name for s in manager.list_sessions("main")] == ["y"]
