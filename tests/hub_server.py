"""A real Hugging Face Hub API on loopback: olah serving local git repos in offline mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_folder(repo: Path, source: Path, message: str) -> str:
    """Replace the repo's files with ``source``'s and commit; returns the commit hash."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.email", "tests@s2s-demo.invalid")
        git(repo, "config", "user.name", "tests")
    for item in repo.iterdir():
        if item.name != ".git":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for item in source.iterdir():
        shutil.copy(item, repo / item.name)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class HubServer:
    """``python -m olah.server`` with ``mirrors-path`` = ``root/mirrors``; repos live at
    ``mirrors/models/<org>/<name>``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.mirrors = root / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    def repo_path(self, repo_id: str) -> Path:
        return self.mirrors / "models" / repo_id

    def start(self, timeout: float = 60.0) -> "HubServer":
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.root / "repos"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            "[accessibility]\noffline = true\n", encoding="utf-8")
        log = open(self.root / "olah.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "olah.server", "-c", str(config)],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2)
                return self
            except OSError as err:
                if getattr(err, "code", None):  # an HTTP error means it is serving
                    return self
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("olah did not start in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
