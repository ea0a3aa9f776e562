"""The Hugging Face Hub: fetching model folders by repo id and uploading them.

``resolve(ref)`` turns a local folder or a repo id (optionally a revision) into a local
folder, downloading only the model folder's files (never a pickle); ``push_folder`` uploads
one. Reading a folder is :mod:`s2s_demo.model_folder`'s job, so this module loads nothing.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from .config import ConfigError, ModelConfig
from .model_folder import ALLOW_PATTERNS, CONFIG_FILE, REQUIRED_FILES, UPLOAD_PATTERNS, WEIGHTS_FILE, ModelLoadError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# what a visitor may load onto the page: the size of the files a download fetches, and how long
# the Hub may take to answer each request
MAX_DOWNLOAD_BYTES = 500 * 10**6
HUB_TIMEOUT_S = 20.0


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"org/name@v1"`` -> ("org/name", "v1"); a plain path or id has no revision."""
    ref = ref.strip()
    if "@" in ref and not Path(ref).exists():
        name, revision = ref.rsplit("@", 1)
        return name, revision or None
    return ref, None


def resolve(ref: str | Path, revision: str | None = None) -> Path:
    """A local model folder for ``ref``: the folder itself, or a Hub snapshot."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; a model folder is needed")
        return path
    ref = str(ref)
    if ref.startswith((".", "/", "~")) or not REPO_ID.match(ref):
        raise ModelLoadError(f"model folder {ref!r} does not exist (and is not a Hub repo id)")
    with hub_errors(ref, revision):
        return Path(snapshot_download(repo_id=ref, revision=revision, allow_patterns=ALLOW_PATTERNS))


@contextlib.contextmanager
def hub_errors(ref: str, revision: str | None):
    """Turn huggingface_hub's errors (and timeouts) into one-sentence ModelLoadErrors."""
    try:
        yield
    except RepositoryNotFoundError as err:
        raise ModelLoadError(f"Hub repo {ref!r} not found (or private without a token)") from err
    except RevisionNotFoundError as err:
        raise ModelLoadError(f"revision {revision!r} not found in Hub repo {ref!r}") from err
    except (LocalEntryNotFoundError, EntryNotFoundError) as err:
        raise ModelLoadError(f"Hub repo {ref!r} could not be downloaded and is not cached: {err}") from err
    except HfHubHTTPError as err:
        raise ModelLoadError(f"Hub error for {ref!r}: {err}") from err
    except (TimeoutError, OSError) as err:  # requests' timeouts and connection errors are OSErrors
        raise ModelLoadError(f"the Hub did not answer for {ref!r} in time: {err}") from err


def fetch_checked(repo_id: str, revision: str | None = None, max_bytes: int = MAX_DOWNLOAD_BYTES,
                  timeout: float = HUB_TIMEOUT_S) -> Path:
    """A Hub model a visitor asked for, checked before any weight is read: the repo id is
    well formed, the repo holds safetensors weights and every file a model folder needs, the
    files a download fetches total at most ``max_bytes`` (from the Hub's file metadata), and
    its config.json describes a valid model. Returns the downloaded snapshot's folder."""
    if not REPO_ID.match(repo_id) or "/" not in repo_id:
        raise ModelLoadError("a Hub model is named owner/name (optionally @revision)")
    with hub_errors(repo_id, revision):
        api = HfApi()
        # the default branch named: the same request as snapshot_download makes; the sha pins the rest
        sha = api.model_info(repo_id, revision=revision or "main", timeout=timeout).sha
        sizes = {f.path: getattr(f, "size", None) for f in api.list_repo_tree(repo_id, revision=sha, recursive=True)}
        if WEIGHTS_FILE not in sizes:
            raise ModelLoadError(f"Hub repo {repo_id!r} has no {WEIGHTS_FILE}: only safetensors weights load, "
                                 "never pickled checkpoints")
        missing = [name for name in REQUIRED_FILES if name not in sizes]
        if missing:
            raise ModelLoadError(f"Hub repo {repo_id!r} is not a model folder: it lacks {', '.join(missing)}")
        fetched = [name for name in sizes if any(fnmatch.fnmatch(name, p) for p in ALLOW_PATTERNS)]
        if any(sizes[name] is None for name in fetched):
            raise ModelLoadError(f"the Hub gave no file sizes for {repo_id!r}, so its size cannot be checked")
        total = sum(sizes[name] for name in fetched)
        if total > max_bytes:
            raise ModelLoadError(f"Hub repo {repo_id!r} is {total / 1e6:,.0f} MB; the page loads models up to "
                                 f"{max_bytes / 1e6:,.0f} MB")
        config = hf_hub_download(repo_id, CONFIG_FILE, revision=sha, etag_timeout=timeout)
        try:
            ModelConfig.load(config)
        except ConfigError as err:
            raise ModelLoadError(f"Hub repo {repo_id!r}: {CONFIG_FILE}: {err}") from err
        return Path(snapshot_download(repo_id, revision=sha, allow_patterns=ALLOW_PATTERNS,
                                      etag_timeout=timeout))


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool = False,
                repo_type: str = "model", allow_patterns: list[str] | None = UPLOAD_PATTERNS,
                commit_message: str = "Upload with s2s-demo") -> str:
    """Upload a folder to a Hub repo, created if missing (token from the argument or HF_TOKEN);
    returns the commit id, which pins what was uploaded. ``allow_patterns=None`` uploads every
    file (a Space)."""
    from huggingface_hub import HfApi  # looked up at call time: tests stand a recorder in for it

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    space = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                             allow_patterns=allow_patterns, commit_message=commit_message)
    return info.oid
