"""The JSON wire format of reward servers: one codec, used by the server and by the client.

Never pickle: every request and answer is plain JSON. Arrays travel as

    {"dtype": "uint8" | "float16" | "float32" | "float64", "shape": [d0, d1, ...],
     "data": "<base64 of the little-endian, C-ordered bytes>"}

which is exact for every listed dtype (NaN and inf included, unlike JSON numbers).

A score request (``POST /score``)::

    {
      "rewards":      ["meta_view", "reconstruction"],   # names served by the server
      "videos":       ARRAY [B, F, 3, H, W],              # or "video_paths": [path, ...]
      "prompts":      [str] * B,
      "trajectories": [CameraTrajectory.to_dict() + {"dtype": ...} | null] * B,   # optional
      "metadata":     [dict] * B,                                                 # optional
      "fps":          16,
      "options":      {"meta_view": {...}}   # optional: the client's reward config, checked by the server
    }

Video dtypes: float videos (values in ``[0, 1]``) are scored as sent, so a float32 request is
scored exactly like the in-process reward; ``uint8`` videos are ``round(255 * x)`` and the server
scores ``uint8 / 255`` as float32 (4x less traffic, per-pixel error at most 1/510).

The answer::

    {"rewards": {name: {"scores": ARRAY [B], "components": {key: ARRAY [B]}, "info": {...},
                        "failures": {"SAMPLE INDEX": "reason"}}},
     "batch_size": B, "merged_requests": k, "server_time_s": t}

Errors are ``{"error": "what is wrong"}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..types import CameraTrajectory, RewardBatch, RewardOutput

WIRE_VERSION = 1

ARRAY_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
"""Dtypes an array may have on the wire (name -> little-endian numpy dtype)."""

VIDEO_DTYPES = ("uint8", "float16", "float32", "float64")

WIRE_VIDEO_DTYPES = ("native", "float32", "float16", "uint8")
"""What a client may send videos as. ``native``: the tensor's own float dtype (bfloat16 is sent
as float32, which holds it exactly) -- lossless, the default."""

_TORCH_DTYPES = {
    "uint8": torch.uint8,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
}


class WireError(ValueError):
    """A payload that does not follow the wire format; ``str()`` names the field and the problem."""


# --------------------------------------------------------------------------- arrays


def encode_array(array: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """A tensor/array as ``{"dtype", "shape", "data"}`` (bfloat16 is widened to float32)."""
    if isinstance(array, torch.Tensor):
        t = array.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        array = t.cpu().contiguous().numpy()
    array = np.asarray(array)
    name = next((n for n, dt in ARRAY_DTYPES.items() if array.dtype.newbyteorder("<") == dt), None)
    if name is None:
        raise WireError(
            f"arrays of dtype {array.dtype} cannot be sent; allowed: {', '.join(ARRAY_DTYPES)}"
        )
    data = np.ascontiguousarray(array, dtype=ARRAY_DTYPES[name]).tobytes()
    return {
        "dtype": name,
        "shape": list(array.shape),
        "data": base64.b64encode(data).decode("ascii"),
    }


def decode_array(
    obj: Any, field: str, *, dtypes: Sequence[str] = tuple(ARRAY_DTYPES), ndim: int | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_array`, checking every part; :class:`WireError` names ``field``."""
    if not isinstance(obj, dict) or not {"dtype", "shape", "data"} <= set(obj):
        raise WireError(f"{field}: expected an object with keys dtype, shape, data (base64)")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype not in dtypes:
        raise WireError(
            f"{field}.dtype: {dtype!r} is not accepted here; allowed: {', '.join(dtypes)}"
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise WireError(f"{field}.shape: expected a list of non-negative integers, got {shape!r}")
    if any(d > 2**31 for d in shape):
        raise WireError(f"{field}.shape: a dimension above 2**31 ({shape})")
    if ndim is not None and len(shape) != ndim:
        raise WireError(f"{field}.shape: expected {ndim} dimensions, got {len(shape)} ({shape})")
    if not isinstance(data, str):
        raise WireError(f"{field}.data: expected a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{field}.data: not valid base64") from None
    np_dtype = ARRAY_DTYPES[dtype]
    expected = math.prod(shape) * np_dtype.itemsize
    if len(raw) != expected:
        raise WireError(
            f"{field}: shape {shape} with dtype {dtype} needs {expected} bytes, but data holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np_dtype).reshape(shape)


# --------------------------------------------------------------------------- videos


def encode_videos(videos: torch.Tensor, wire_dtype: str = "native") -> dict[str, Any]:
    """``[B, F, 3, H, W]`` float videos in ``[0, 1]`` -> wire array (see the module docstring)."""
    if wire_dtype not in WIRE_VIDEO_DTYPES:
        raise WireError(f"wire dtype {wire_dtype!r} is not one of {', '.join(WIRE_VIDEO_DTYPES)}")
    v = videos.detach()
    if wire_dtype == "uint8":
        v = v.float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    elif wire_dtype != "native":
        v = v.to(_TORCH_DTYPES[wire_dtype])
    elif not v.is_floating_point():
        raise WireError(f"videos must be float in [0, 1], got dtype {v.dtype}")
    return encode_array(v)


def quantize_like_wire(videos: torch.Tensor) -> torch.Tensor:
    """What a server scores for ``wire_dtype="uint8"``: ``round(255 x) / 255`` as float32."""
    return videos.float().clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def decode_videos(obj: Any, field: str = "videos") -> torch.Tensor:
    """Wire array -> ``[B, F, 3, H, W]`` tensor (uint8 becomes float32 ``x / 255``)."""
    array = decode_array(obj, field, dtypes=VIDEO_DTYPES, ndim=5)
    check_video_shape(array.shape, field)
    # one preallocated tensor of the declared shape, filled from the decoded bytes (no copies)
    dtype = {"float16": torch.float16, "float64": torch.float64}.get(
        array.dtype.name, torch.float32
    )
    out = torch.empty(array.shape, dtype=dtype)
    out.numpy()[...] = array
    return out.div_(255.0) if array.dtype == np.uint8 else out


def check_video_shape(shape: Sequence[int], field: str = "videos") -> None:
    if len(shape) != 5 or shape[2] != 3 or min(shape) < 1:
        raise WireError(
            f"{field}.shape: expected [B, F, 3, H, W] with every size >= 1, got {list(shape)}"
        )


def read_video_file(path: Path, *, name: str | None = None, max_bytes: int = 0) -> torch.Tensor:
    """A video file -> ``[F, 3, H, W]`` float32 in ``[0, 1]``.

    ``.npy``: ``uint8 [F, H, W, 3]`` (scored as ``x / 255``) or float ``[F, 3, H, W]`` (as is);
    loaded with ``allow_pickle=False``. Anything else is decoded with ffmpeg, frame by frame.
    ``max_bytes`` (> 0) caps the decoded float32 size: a small file that declares a huge video is
    refused before it is decoded (or as soon as its frames pass the cap). Errors name the file as
    ``name`` (what the client sent), never the server's path or decoder build.
    """
    name = name or path.name
    if path.suffix.lower() == ".npy":
        return _read_npy(path, name, max_bytes)
    import imageio_ffmpeg

    frames: list[np.ndarray] = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = (int(v) for v in meta["size"])
        frame_bytes = 3 * h * w * 4  # float32
        if max_bytes and frame_bytes > max_bytes:
            raise WireError(f"{name}: a {w}x{h} frame decodes past the server's limit")
        for buf in reader:
            frames.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3))
            if max_bytes and len(frames) * frame_bytes > max_bytes:
                reader.close()
                raise WireError(
                    f"{name}: decodes to more than the server's limit of {max_bytes} bytes "
                    f"({len(frames)}+ frames of {w}x{h})"
                )
    except WireError:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure is a bad input file (no details out)
        raise WireError(f"{name}: cannot decode the video") from None
    if not frames:
        raise WireError(f"{name}: no frames could be decoded")
    out = torch.empty(len(frames), 3, h, w, dtype=torch.float32)  # preallocated, filled per frame
    for i, frame in enumerate(frames):
        out[i] = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0)
    return out


def _read_npy(path: Path, name: str, max_bytes: int) -> torch.Tensor:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    except (ValueError, OSError, EOFError):
        raise WireError(
            f"{name}: not a valid .npy array (object arrays and pickles are refused)"
        ) from None
    if max_bytes and array.size * 4 > max_bytes:
        raise WireError(
            f"{name}: {list(array.shape)} decodes past the server's limit of {max_bytes} bytes"
        )
    if array.dtype == np.uint8:
        if array.ndim != 4 or array.shape[-1] != 3:
            raise WireError(
                f"{name}: a uint8 .npy video must be [F, H, W, 3], got {list(array.shape)}"
            )
        return (
            torch.from_numpy(np.array(array)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        )
    if array.dtype.kind == "f":
        if array.ndim != 4 or array.shape[1] != 3:
            raise WireError(
                f"{name}: a float .npy video must be [F, 3, H, W], got {list(array.shape)}"
            )
        return torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("=")))
    raise WireError(f"{name}: .npy videos must be uint8 or float, got {array.dtype}")


# --------------------------------------------------------------------------- trajectories, metadata


def encode_trajectory(traj: CameraTrajectory | None) -> dict[str, Any] | None:
    """``CameraTrajectory.to_dict()`` plus the tensors' dtype, so that float32 paths stay float32."""
    if traj is None:
        return None
    out = traj.to_dict()
    out["dtype"] = str(traj.c2w.dtype).removeprefix("torch.")
    return out


def decode_trajectory(obj: Any, field: str) -> CameraTrajectory | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise WireError(f"{field}: expected a camera trajectory object or null")
    try:
        traj = CameraTrajectory.from_dict(obj)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise WireError(f"{field}: {exc}") from None
    dtype = _TORCH_DTYPES.get(obj.get("dtype", "float64"))
    if dtype is None or dtype == torch.uint8:
        raise WireError(
            f"{field}.dtype: expected float16, float32 or float64, got {obj.get('dtype')!r}"
        )
    traj.c2w, traj.intrinsics = traj.c2w.to(dtype), traj.intrinsics.to(dtype)
    return traj


def jsonable(value: Any, field: str, *, strict: bool = True) -> Any:
    """Metadata/info -> plain JSON values: tensors and numpy arrays become lists, dataclasses
    dicts. Anything else raises :class:`WireError` naming ``field``, or with ``strict=False``
    (diagnostic ``info``, logged as text) becomes its ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return jsonable(value.tolist(), field, strict=strict)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)},
            field,
            strict=strict,
        )
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{field}.{k}", strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{field}[{i}]", strict=strict) for i, v in enumerate(value)]
    if not strict:
        return repr(value)
    raise WireError(f"{field}: a {type(value).__name__} cannot be sent as JSON")


# --------------------------------------------------------------------------- requests and answers


def encode_request(
    batch: RewardBatch,
    rewards: Sequence[str],
    *,
    wire_dtype: str = "native",
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body asking a server to score ``batch`` with ``rewards``."""
    body: dict[str, Any] = {
        "rewards": list(rewards),
        "videos": encode_videos(batch.videos, wire_dtype),
        "prompts": list(batch.prompts),
        "trajectories": [encode_trajectory(t) for t in batch.trajectories],
        "metadata": [jsonable(m, f"metadata[{i}]") for i, m in enumerate(batch.metadata)],
        "fps": int(batch.fps),
    }
    if options is not None:
        body["options"] = options
    return body


def encode_output(output: RewardOutput, batch_size: int, reward: str) -> dict[str, Any]:
    """One reward's answer; checks that ``scores`` and every component are ``[B]``."""

    def checked(t: Any, what: str) -> dict[str, Any]:
        t = torch.as_tensor(t)
        if tuple(t.shape) != (batch_size,):
            raise ValueError(
                f"reward {reward!r} returned {what} of shape {tuple(t.shape)}, expected [{batch_size}]"
            )
        return encode_array(t.float() if not t.is_floating_point() else t)

    return {
        "scores": checked(output.scores, "scores"),
        "components": {k: checked(v, f"component {k!r}") for k, v in output.components.items()},
        "info": jsonable(output.info, f"reward {reward!r} info", strict=False),
        "failures": {str(int(i)): str(reason) for i, reason in output.failures.items()},
    }


def decode_output(obj: Any, field: str, device: torch.device | str = "cpu") -> RewardOutput:
    if not isinstance(obj, dict) or "scores" not in obj:
        raise WireError(f"{field}: expected an object with scores, components, info")
    scores = torch.from_numpy(decode_array(obj["scores"], f"{field}.scores", ndim=1).copy()).to(
        device
    )
    components = {
        k: torch.from_numpy(decode_array(v, f"{field}.components.{k}", ndim=1).copy()).to(device)
        for k, v in (obj.get("components") or {}).items()
    }
    failures = obj.get("failures") or {}
    if not isinstance(failures, dict):
        raise WireError(f"{field}.failures: expected an object {{sample index: reason}}")
    try:
        failed = {int(i): str(reason) for i, reason in failures.items()}
    except ValueError:
        raise WireError(f"{field}.failures: keys must be sample indices") from None
    return RewardOutput(
        scores=scores, components=components, info=obj.get("info") or {}, failures=failed
    )


def split_output(output: RewardOutput, sizes: Sequence[int]) -> list[RewardOutput]:
    """Cut a merged batch's answer back into per-request answers (``info`` lists of length B
    are cut too; other info values are copied to every part)."""
    total = sum(sizes)
    out, start = [], 0
    for n in sizes:
        sl = slice(start, start + n)
        info = {
            k: (v[sl] if isinstance(v, (list, tuple, torch.Tensor)) and len(v) == total else v)
            for k, v in output.info.items()
        }
        out.append(
            RewardOutput(
                scores=output.scores[sl],
                components={k: v[sl] for k, v in output.components.items()},
                info=info,
                failures={i - start: r for i, r in output.failures.items() if start <= i < sl.stop},
            )
        )
        start += n
    return out


def concat_outputs(parts: Sequence[RewardOutput]) -> RewardOutput:
    """Inverse of :func:`split_output` for answers of consecutive chunks."""
    if len(parts) == 1:
        return parts[0]
    info: dict[str, Any] = {}
    failures: dict[int, str] = {}
    offset = 0
    for part in parts:
        failures.update({offset + i: r for i, r in part.failures.items()})
        offset += len(part.scores)
        for k, v in part.info.items():
            if isinstance(v, (list, tuple)) and len(v) == len(part.scores):
                info.setdefault(k, []).extend(v)
            else:
                info.setdefault(k, v)
    return RewardOutput(
        scores=torch.cat([p.scores for p in parts]),
        components={k: torch.cat([p.components[k] for p in parts]) for k in parts[0].components},
        info=info,
        failures=failures,
    )
