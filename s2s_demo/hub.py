"""The Hugging Face Hub: fetching model folders by repo id and uploading them.

``resolve(ref)`` turns a local folder or a repo id (optionally a revision) into a local
folder, downloading only the model folder's files (never a pickle); ``push_folder`` uploads
one. Reading a folder is :mod:`s2s_demo.model_folder`'s job, so this module loads nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from .model_folder import ALLOW_PATTERNS, UPLOAD_PATTERNS, ModelLoadError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
    try:
        return Path(snapshot_download(repo_id=ref, revision=revision, allow_patterns=ALLOW_PATTERNS))
    except RepositoryNotFoundError as err:
        raise ModelLoadError(f"Hub repo {ref!r} not found (or private without a token)") from err
    except RevisionNotFoundError as err:
        raise ModelLoadError(f"revision {revision!r} not found in Hub repo {ref!r}") from err
    except (LocalEntryNotFoundError, EntryNotFoundError) as err:
        raise ModelLoadError(f"Hub repo {ref!r} could not be downloaded and is not cached: {err}") from err
    except HfHubHTTPError as err:
        raise ModelLoadError(f"Hub error for {ref!r}: {err}") from err


def push_folder(folder: Path, repo_id: str, token: str | None = None, private: bool = False,
                repo_type: str = "model", allow_patterns: list[str] | None = UPLOAD_PATTERNS,
                commit_message: str = "Upload with s2s-demo") -> str:
    """Upload a folder to a Hub repo, created if missing (token from the argument or HF_TOKEN);
    returns the commit id, which pins what was uploaded. ``allow_patterns=None`` uploads every
    file (a Space)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    space = {"space_sdk": "gradio"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                             allow_patterns=allow_patterns, commit_message=commit_message)
    return info.oid
