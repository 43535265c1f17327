"""Weight locations: a local path, or a Hugging Face Hub id resolved from the local HF cache.

Every weight option (``model.path``, ``geometry.weights``, ``judge.model_path``,
``aesthetic.checkpoint``, ``reconstruction.lpips_weights``) accepts

* a local directory or file (``/ckpt/Wan2.1-T2V-1.3B-Diffusers``, ``~/hps/HPS_v2.1_compressed.pt``);
* a hub repository id for a directory: ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` (optionally
  ``@revision``), or ``hf://Wan-AI/Wan2.1-T2V-1.3B-Diffusers``;
* a hub file for a file option: ``xswu/HPSv2/HPS_v2.1_compressed.pt`` (repository id, then the
  file's path inside it).

A value that exists on disk is always a local path. Otherwise a value shaped like a hub id is
looked up in the local HF cache (``$HF_HUB_CACHE`` / ``$HF_HOME``) with ``huggingface_hub``
(``local_files_only=True``): nothing downloads unless the caller passes ``allow_download=True``
(``worldr1 check/train --allow-download``). When a hub id is not cached the error prints the exact
command that downloads it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from .errors import UserError

HF_PREFIX = "hf://"
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_RE = re.compile(rf"^(?P<repo>{_PART}/{_PART})(?:@(?P<rev>[A-Za-z0-9._/-]+))?$")
_FILE_RE = re.compile(rf"^(?P<repo>{_PART}/{_PART})(?:@(?P<rev>[A-Za-z0-9._-]+))?/(?P<file>.+)$")

Kind = Literal["dir", "file"]


class WeightsNotFound(UserError, FileNotFoundError):
    """A weight location that is neither on disk nor in the local HF cache (message ready for the user)."""


def looks_like_hub_id(value: str, kind: Kind) -> bool:
    """True for ``org/name[@rev]`` (directories) or ``org/name[@rev]/path/file`` (files) that are
    not paths written explicitly as paths (``/``, ``./``, ``../``, ``~``)."""
    if value.startswith(HF_PREFIX):
        return True
    if value.startswith(("/", "./", "../", "~")) or "\\" in value:
        return False
    return bool((_REPO_RE if kind == "dir" else _FILE_RE).match(value))


def download_command(value: str, kind: Kind) -> str:
    """The shell command that puts ``value`` into the local HF cache."""
    repo, rev, filename = _split(value, kind)
    parts = ["hf", "download", repo]
    if filename:
        parts.append(filename)
    if rev:
        parts += ["--revision", rev]
    return " ".join(parts)


def _split(value: str, kind: Kind) -> tuple[str, str | None, str | None]:
    text = value[len(HF_PREFIX) :] if value.startswith(HF_PREFIX) else value
    m = (_REPO_RE if kind == "dir" else _FILE_RE).match(text)
    if m is None:
        raise WeightsNotFound(
            f"{value!r} is not a hub id (expected org/name for a directory or org/name/file for a file)"
        )
    return m.group("repo"), m.group("rev"), m.groupdict().get("file")


def resolve_weights(value: str, *, kind: Kind, key: str, allow_download: bool = False) -> Path:
    """The local path of a weight option (see the module docstring); :class:`WeightsNotFound`
    naming ``key`` and the download command when it is neither on disk nor cached."""
    local = Path(value).expanduser()
    if not value.startswith(HF_PREFIX) and local.exists():
        if kind == "dir" and not local.is_dir():
            raise WeightsNotFound(f"{key}: {value!r} is a file; expected a directory")
        if kind == "file" and not local.is_file():
            raise WeightsNotFound(f"{key}: {value!r} is a directory; expected a file")
        return local
    if not looks_like_hub_id(value, kind):
        what = "directory" if kind == "dir" else "file"
        raise WeightsNotFound(f"{key}: {what} {value!r} does not exist")
    repo, rev, filename = _split(value, kind)
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        if kind == "dir":
            return Path(snapshot_download(repo, revision=rev, local_files_only=not allow_download))
        return Path(
            hf_hub_download(repo, filename, revision=rev, local_files_only=not allow_download)
        )
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise WeightsNotFound(
            f"{key}: {value!r} is not a local path and not in the local Hugging Face cache; "
            f"download it with `{download_command(value, kind)}` (or pass --allow-download)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - network/auth errors of an opted-in download
        raise WeightsNotFound(f"{key}: cannot fetch {value!r} from the hub: {exc}") from None
