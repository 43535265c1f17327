"""The videos of a directory, their prompts and intended camera paths."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EvalError
from ..types import CameraTrajectory

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif")


@dataclass
class VideoItem:
    """One video to evaluate."""

    path: Path
    name: str
    prompt: str = ""
    camera_file: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def discover_videos(videos_dir: str | Path, prompts_file: str | None = None) -> list[VideoItem]:
    """Videos of ``videos_dir`` (with ``index.json`` from ``worldr1 infer`` or plain files)."""
    from ..prompts import read_prompt_file

    root = Path(videos_dir)
    if not root.is_dir():
        raise EvalError(f"videos directory {str(root)!r} not found")
    index = root / "index.json"
    items: list[VideoItem] = []
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            entries = data.get("videos", [])
            assert isinstance(entries, list) and all(
                isinstance(e, dict) and isinstance(e.get("file"), str) for e in entries
            )
        except (ValueError, AttributeError, AssertionError):
            raise EvalError(
                f"{index}: not an index written by `worldr1 infer` (expected JSON with a "
                '"videos" list of {"file": ...} entries); fix or delete it'
            ) from None
        for e in entries:
            path = root / e["file"]
            if not path.is_file():
                continue  # an interrupted infer run: evaluate what exists
            cam = root / e["camera_file"] if e.get("camera_file") else None
            items.append(
                VideoItem(
                    path,
                    Path(e["file"]).stem,
                    e.get("prompt", ""),
                    cam,
                    {"seed": e.get("seed"), "index": e.get("index")},
                )
            )
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in VIDEO_SUFFIXES and "eval" not in p.relative_to(root).parts
        )
        items = [VideoItem(p, str(p.relative_to(root).with_suffix(""))) for p in files]
    if not items:
        raise EvalError(
            f"{root}: no videos found ({', '.join(VIDEO_SUFFIXES)} files or an index.json of `worldr1 infer`)"
        )
    if prompts_file:
        prompts = read_prompt_file(Path(prompts_file), key="--prompts")
        if len(prompts) != len(items):
            raise EvalError(
                f"--prompts {prompts_file}: {len(prompts)} prompts for {len(items)} videos in {root}; "
                "give one prompt per video, in the videos' file-name order"
            )
        for item, prompt in zip(items, prompts):
            item.prompt = prompt
    return items


def intended_trajectory(
    item: VideoItem, parser: Any, frames: int, width: int, height: int
) -> CameraTrajectory | None:
    """The intended camera path: the one ``worldr1 infer`` recorded, else parsed from the prompt."""
    if item.camera_file is not None and item.camera_file.is_file():
        traj = CameraTrajectory.from_dict(json.loads(item.camera_file.read_text(encoding="utf-8")))
        if traj.num_frames == frames and (traj.width, traj.height) == (width, height):
            return traj
    if parser is None or not item.prompt:
        return None
    spec = parser.parse(item.prompt)
    return parser.trajectory(spec, frames, width, height) if spec.motions else None
