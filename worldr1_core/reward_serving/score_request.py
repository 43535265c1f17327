"""Check a ``POST /score`` body and turn it into ``(reward names, RewardBatch)``.

Every field is checked (shape, dtype, lengths); a bad request raises :class:`HTTPError` with a
4xx status and a message that says what is wrong.
"""

from __future__ import annotations

from typing import Any

import torch

from ..types import RewardBatch
from .limits import HTTPError, ServerSettings
from .served import ServedReward
from .wire import WireError, check_video_shape, decode_trajectory, decode_videos, read_video_file

REQUEST_KEYS = {
    "rewards",
    "videos",
    "video_paths",
    "prompts",
    "trajectories",
    "metadata",
    "fps",
    "options",
}


def _need(cond: object, message: str, status: int = 422) -> None:
    if not cond:
        raise HTTPError(status, message)


def decode_score_request(
    payload: Any, served: dict[str, ServedReward], settings: ServerSettings
) -> tuple[list[str], RewardBatch]:
    """Check a parsed ``/score`` body and turn it into (reward names, RewardBatch)."""
    _need(isinstance(payload, dict), "the body must be a JSON object")
    unknown = sorted(set(payload) - REQUEST_KEYS)
    _need(not unknown, f"unknown key(s) {unknown}; allowed: {', '.join(sorted(REQUEST_KEYS))}")

    names = payload.get("rewards")
    _need(
        isinstance(names, list) and names and all(isinstance(n, str) for n in names),
        "rewards: expected a non-empty list of reward names",
    )
    _need(len(set(names)) == len(names), f"rewards: names repeat: {names}")
    for name in names:
        _need(
            name in served, f"reward {name!r} is not served here; served: {', '.join(served)}", 404
        )

    options = payload.get("options")
    if options is not None:
        _need(isinstance(options, dict), "options: expected an object reward name -> options")
        for name, opts in options.items():
            if name in served and not _same_options(opts, served[name].options):
                raise HTTPError(
                    409,
                    f"reward {name!r}: the client's options {opts} differ from the server's {served[name].options}; "
                    "start the server with --config pointing at the run config",
                )

    prompts = payload.get("prompts")
    _need(
        isinstance(prompts, list) and all(isinstance(p, str) for p in prompts),
        "prompts: expected a list of strings",
    )
    b = len(prompts)

    has_videos, has_paths = (
        payload.get("videos") is not None,
        payload.get("video_paths") is not None,
    )
    _need(has_videos != has_paths, "give exactly one of videos (base64 array) or video_paths")
    if has_videos:
        try:
            videos = decode_videos(payload.pop("videos"), "videos")  # its text freed after
        except WireError as exc:
            raise HTTPError(422, str(exc)) from None
    else:
        videos = _read_paths(payload["video_paths"], settings)
    _need(
        videos.shape[0] == b, f"videos hold {videos.shape[0]} samples but prompts has {b} entries"
    )

    trajectories = payload.get("trajectories") or [None] * b
    _need(
        isinstance(trajectories, list) and len(trajectories) == b,
        f"trajectories: expected a list of {b} entries",
    )
    try:
        trajectories = [
            decode_trajectory(t, f"trajectories[{i}]") for i, t in enumerate(trajectories)
        ]
    except WireError as exc:
        raise HTTPError(422, str(exc)) from None

    metadata = payload.get("metadata") or [{} for _ in range(b)]
    _need(
        isinstance(metadata, list)
        and len(metadata) == b
        and all(isinstance(m, dict) for m in metadata),
        f"metadata: expected a list of {b} objects",
    )
    fps = payload.get("fps", 16)
    _need(
        isinstance(fps, int) and not isinstance(fps, bool) and fps >= 1,
        f"fps: expected a positive integer, got {fps!r}",
    )
    return names, RewardBatch(
        videos=videos, prompts=prompts, trajectories=trajectories, metadata=metadata, fps=fps
    )


def _same_options(client: Any, server: dict[str, Any]) -> bool:
    """Scoring options agree; ``device`` is where the server runs a model, not how it scores."""
    if not isinstance(client, dict):
        return False
    return {k: v for k, v in client.items() if k != "device"} == {
        k: v for k, v in server.items() if k != "device"
    }


def _read_paths(paths: Any, settings: ServerSettings) -> torch.Tensor:
    """Video files under ``--video-root`` -> ``[B, F, 3, H, W]``."""
    if settings.video_root is None:
        raise HTTPError(
            403, "video_paths are disabled on this server (start it with --video-root DIR)"
        )
    _need(
        isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths),
        "video_paths: expected a list of strings",
    )
    root = settings.video_root.resolve()
    videos = []
    for i, text in enumerate(paths):
        path = (root / text).resolve()
        if not path.is_relative_to(root):
            raise HTTPError(403, f"video_paths[{i}]: {text!r} is outside the server's --video-root")
        _need(
            path.is_file(),
            f"video_paths[{i}]: {text!r} does not exist under the server's --video-root",
        )
        try:
            videos.append(read_video_file(path, name=text, max_bytes=settings.decoded_limit))
        except WireError as exc:
            raise HTTPError(422, f"video_paths[{i}]: {exc}") from None
    shapes = {tuple(v.shape) for v in videos}
    _need(
        len(shapes) == 1,
        f"video_paths: all videos of a batch must share [F, 3, H, W]; got {sorted(shapes)}",
    )
    out = torch.stack(videos)
    check_video_shape(out.shape, "video_paths")
    return out
