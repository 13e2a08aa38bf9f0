"""Commits from a real repository (`git log`), and deployments from tags matching a pattern.

Commit times are the author's and the committer's, with their zones, stored in UTC. With a
tag pattern (`v*`, `deploy/prod-*`) each matching tag is one successful production
deployment at the tag's time, carrying the commits since the previous matching tag — the
way DevLake turns release tags into deployments when no CD system reports them.
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import SQLModel

from collectors.tables import Commit, Deployment

FIELD, RECORD = "\x1f", "\x1e"


class GitError(ValueError):
    """The path is not a repository git can read; says what git said."""


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise GitError("git is not installed (needed to read a repository)") from None
    if done.returncode != 0:
        raise GitError(f"{repo}: git {args[0]} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def when(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


class GitImporter:
    kind = "git"

    def __init__(self, tag_pattern: str | None = None, *, repository: str | None = None,
                 service: str | None = None, environment: str = "production") -> None:
        self.tag_pattern = tag_pattern
        self.repository = repository
        self.service = service
        self.environment = environment

    def _check(self, path: Path) -> None:
        if not path.is_dir():
            raise GitError(f"{path}: not a directory (give the repository's folder)")
        git(path, "rev-parse", "--git-dir")

    def _name(self, path: Path) -> str:
        return self.repository or path.resolve().name

    def fingerprint(self, path: Path) -> str:
        self._check(path)
        head = git(path, "rev-parse", "HEAD").strip()
        tags = self._tags(path) if self.tag_pattern else []
        text = repr((self._name(path), head, tags, self.service, self.environment))
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, path: Path) -> list[SQLModel]:
        self._check(path)
        out = git(path, "log", f"--format=%H{FIELD}%ae{FIELD}%aI{FIELD}%cI{FIELD}%s{RECORD}",
                  "HEAD")
        name = self._name(path)
        rows: list[SQLModel] = []
        for chunk in out.split(RECORD):
            record = chunk.strip("\n")
            if not record:
                continue
            sha, author, authored, committed, subject = record.split(FIELD, 4)
            rows.append(Commit(sha=sha, repository=name, author=author,
                               authored=when(authored), committed=when(committed),
                               subject=subject[:500]))
        if self.tag_pattern:
            rows.extend(self._deployments(path, name))
        return rows

    def _tags(self, path: Path) -> list[tuple[str, str]]:
        out = git(path, "for-each-ref", "--sort=creatordate",
                  f"--format=%(refname:short){FIELD}%(creatordate:iso-strict)",
                  f"refs/tags/{self.tag_pattern}")
        return [(line.split(FIELD)[0], line.split(FIELD)[1])
                for line in out.splitlines() if line]

    def _deployments(self, path: Path, name: str) -> list[SQLModel]:
        rows: list[SQLModel] = []
        previous: str | None = None
        for tag, created in self._tags(path):
            span = f"{previous}..{tag}" if previous else tag
            shas = git(path, "rev-list", span).split()
            moment = when(created)
            service = self.service or name
            rows.append(Deployment(id=f"{service}@{tag}", service=service,
                                   environment=self.environment, result="success",
                                   started=moment, finished=moment, commit_shas=" ".join(shas)))
            previous = tag
        return rows
