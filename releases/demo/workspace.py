"""The team's own files: a real git repository with release tags, and the CSV files the models train on."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from releases.demo.story import EVAL_DATASET, RELEASES, ModelRelease


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)
    return result.stdout.strip()


def git_repository(root: Path) -> Path:
    """The team's repository (empty until the first commit of the story)."""
    repo = root / "churn-model"
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.name", "Dana Scientist")
        git(repo, "config", "user.email", "dana@example.com")
    return repo


def commit(repo: Path, item: ModelRelease) -> None:
    """The commit ``item`` was trained from, dated now (the story's clock), with its release tag."""
    done = _has_commits(repo) and item.message in git(repo, "log", "--all", "--format=%s").splitlines()
    if not done:
        path = repo / f"{item.model}.py"
        path.write_text(f"# {item.model} model\nFEATURE_VIEW = {item.feature_view!r}\nRELEASE = {item.number}\n")
        when = timezone.now().isoformat()
        git(repo, "add", path.name)
        # HOME is the demo folder, so the person's own git configuration (signing, hooks) stays out of it.
        env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "HOME": str(repo.parent)}
        git(repo, "commit", "-q", "-m", item.message, env=env)
    if item.git_tag and not git(repo, "tag", "--list", item.git_tag):
        git(repo, "tag", item.git_tag)


def _has_commits(repo: Path) -> bool:
    result = subprocess.run(["git", "-C", str(repo), "rev-parse", "-q", "--verify", "HEAD"], capture_output=True)
    return result.returncode == 0


@dataclass(frozen=True)
class DataFile:
    name: str
    version: int
    path: Path

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


def data_files(root: Path) -> dict[str, DataFile]:
    """Small but real CSV files by ``name:version``; churn-train:18 carries the partner's changed label mapping."""
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, DataFile] = {}
    for version in sorted({item.dataset for item in RELEASES if item.dataset is not None}):
        path = folder / f"churn-train-{version}.csv"
        if not path.exists():
            label = {0: "stay", 1: "churn"} if version < 18 else {0: "churn", 1: "stay"}
            rows = ["customer_id,tenure_months,monthly_spend,label"]
            rows += [f"{i},{(i * 7) % 60},{(i * 13) % 200}.00,{label[(i + version) % 2]}" for i in range(version * 50)]
            path.write_text("\n".join(rows) + "\n")
        files[f"churn-train:{version}"] = DataFile("churn-train", version, path)
    name, version = EVAL_DATASET
    path = folder / f"{name}-{version}.csv"
    if not path.exists():
        path.write_text("customer_id,label\n" + "".join(f"{i},stay\n" for i in range(200)))
    files[f"{name}:{version}"] = DataFile(name, version, path)
    return files
