"""Plain data passed between components.

Shape conventions used throughout the project:

* videos: ``[B, F, 3, H, W]`` float in ``[0, 1]`` (frames, RGB, height, width)
* latents: ``[B, C, F', H', W']`` in the base model's latent space
* poses: camera-to-world ``4x4`` matrices in the OpenCV convention
  (x right, y down, z forward, i.e. the camera looks along +z)
* intrinsics: ``3x3`` pinhole matrices in pixels of the video frame
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass
class CameraSpec:
    """A prompt split into its camera instruction and its scene description.

    ``motions`` is the ordered list of motion names (``"orbit_left"``, ``"push_in"``, ``"fixed"``
    ...); it is empty when the prompt has no camera sentence. ``scene`` is the prompt without the
    camera sentence; ``camera_text`` is the camera sentence as written (``""`` if none).
    """

    motions: list[str]
    scene: str
    camera_text: str = ""


@dataclass
class Prompt:
    """One prompt as the trainer hands it around: full text plus where it came from."""

    text: str
    source: str = ""
    index: int = -1
    camera: CameraSpec | None = None

    @property
    def scene(self) -> str:
        return self.camera.scene if self.camera is not None else self.text


@dataclass
class CameraTrajectory:
    """A per-frame camera path.

    ``c2w``: ``[F, 4, 4]`` camera-to-world poses, OpenCV convention (x right, y down, z forward).
    ``intrinsics``: ``[F, 3, 3]`` pinhole intrinsics in pixels for a ``width x height`` frame.
    ``motions``: the motion names the path was built from (may be empty).
    """

    c2w: torch.Tensor
    intrinsics: torch.Tensor
    width: int
    height: int
    motions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.c2w.ndim != 3 or tuple(self.c2w.shape[1:]) != (4, 4):
            raise ValueError(f"CameraTrajectory.c2w must be [F, 4, 4], got {tuple(self.c2w.shape)}")
        if self.intrinsics.ndim == 2:
            self.intrinsics = self.intrinsics.expand(self.c2w.shape[0], 3, 3).clone()
        if tuple(self.intrinsics.shape) != (self.c2w.shape[0], 3, 3):
            raise ValueError(
                f"CameraTrajectory.intrinsics must be [F, 3, 3] or [3, 3], got {tuple(self.intrinsics.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates, ``[F, 3]``."""
        return self.c2w[:, :3, 3]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested lists of floats)."""
        return {
            "width": self.width,
            "height": self.height,
            "motions": list(self.motions),
            "c2w": self.c2w.double().tolist(),
            "intrinsics": self.intrinsics.double().tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraTrajectory:
        try:
            return cls(
                c2w=torch.tensor(data["c2w"], dtype=torch.float64),
                intrinsics=torch.tensor(data["intrinsics"], dtype=torch.float64),
                width=int(data["width"]),
                height=int(data["height"]),
                motions=list(data.get("motions", [])),
            )
        except KeyError as exc:
            raise ValueError(
                f"camera trajectory JSON lacks the key {exc}; expected keys c2w, intrinsics, width, height"
            ) from None


@dataclass
class LatentLayout:
    """How a ``frames x height x width`` video maps onto the base model's latent grid.

    ``frame_indices[i]`` is the pixel frame that latent frame ``i`` stands for (Wan2.1 with 81
    frames: 0, 4, 8, ..., 80). Latent initializers use it to pick frames of a pixel-rate camera
    path instead of hard-coding one model's temporal compression.
    """

    channels: int
    latent_frames: int
    latent_height: int
    latent_width: int
    frames: int
    height: int
    width: int
    frame_indices: list[int]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Latent shape without the batch dimension: ``(C, F', H', W')``."""
        return (self.channels, self.latent_frames, self.latent_height, self.latent_width)

    @property
    def spatial_compression(self) -> int:
        return self.height // self.latent_height


@dataclass
class Gaussians:
    """A set of 3D Gaussians (or points, with tiny scales) in world coordinates.

    ``means [N, 3]``, ``scales [N, 3]`` (standard deviations, world units), ``quats [N, 4]``
    (w, x, y, z; unit norm), ``opacities [N]`` in ``[0, 1]``, ``colors [N, 3]`` in ``[0, 1]``
    (the view-independent colour). ``sh [N, K, 3]`` or None: spherical-harmonic coefficients of a
    view-dependent colour, ``K = (degree + 1)^2`` bands DC first, 3DGS convention
    (``colour(d) = max(0, sum_k sh_k Y_k(d) + 0.5)`` for the viewing direction ``d``), e.g. from
    Depth Anything 3's Gaussian head (degree 2); renderers use it when present.
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    sh: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int | None:
        """Degree of ``sh`` (None without it)."""
        return None if self.sh is None else int(round(self.sh.shape[1] ** 0.5)) - 1

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(
            *(  # type: ignore[arg-type]  # field order = constructor order
                None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                for f in dataclasses.fields(self)
            )
        )

    def select(self, keep: torch.Tensor) -> Gaussians:
        """The Gaussians where the bool mask (or index tensor) ``keep`` selects."""
        return Gaussians(
            *(  # type: ignore[arg-type]  # field order = constructor order
                None if getattr(self, f.name) is None else getattr(self, f.name)[keep]
                for f in dataclasses.fields(self)
            )
        )


@dataclass
class Geometry:
    """What a geometry estimator recovers from one video.

    ``depth [F, H, W]``, ``c2w [F, 4, 4]`` (OpenCV convention), ``intrinsics [F, 3, 3]`` in pixels
    of the ``H x W`` depth maps, ``confidence [F, H, W]`` or None, ``gaussians`` or None,
    ``registered [F]`` bool (frames the estimator could place; feed-forward models place all),
    ``info`` free-form diagnostics (e.g. why frames were not registered).
    """

    depth: torch.Tensor | None
    c2w: torch.Tensor
    intrinsics: torch.Tensor
    confidence: torch.Tensor | None = None
    gaussians: Gaussians | None = None
    registered: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_registered(self) -> int:
        if self.registered is None:
            return int(self.c2w.shape[0])
        return int(self.registered.sum())


@dataclass
class RewardBatch:
    """What a reward's ``score`` receives.

    ``videos``: ``[B, F, 3, H, W]`` float in ``[0, 1]``; ``prompts``: the full prompt texts;
    ``trajectories``: the intended camera path per sample (None where the prompt has none);
    ``metadata``: per-sample dicts (prompt source, seed, ...).

    ``shared`` holds intermediate results that several rewards of one batch reuse (e.g. the
    geometry of each video): use :meth:`cached` so that they are computed once per batch.
    """

    videos: torch.Tensor
    prompts: list[str]
    trajectories: list[CameraTrajectory | None] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    fps: int = 16
    shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        b = int(self.videos.shape[0])
        if self.videos.ndim != 5 or self.videos.shape[2] != 3:
            raise ValueError(
                f"RewardBatch.videos must be [B, F, 3, H, W], got {tuple(self.videos.shape)}"
            )
        if len(self.prompts) != b:
            raise ValueError(f"RewardBatch has {b} videos but {len(self.prompts)} prompts")
        if not self.trajectories:
            self.trajectories = [None] * b
        if not self.metadata:
            self.metadata = [{} for _ in range(b)]
        if len(self.trajectories) != b or len(self.metadata) != b:
            raise ValueError("RewardBatch.trajectories and .metadata must have one entry per video")

    def __len__(self) -> int:
        return int(self.videos.shape[0])

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """Return ``shared[key]``, computing it with ``compute()`` the first time."""
        if key not in self.shared:
            self.shared[key] = compute()
        value: T = self.shared[key]
        return value

    def select(self, indices: list[int]) -> RewardBatch:
        """A sub-batch (the shared cache is not carried over)."""
        return RewardBatch(
            videos=self.videos[indices],
            prompts=[self.prompts[i] for i in indices],
            trajectories=[self.trajectories[i] for i in indices],
            metadata=[self.metadata[i] for i in indices],
            fps=self.fps,
        )


@dataclass
class RewardOutput:
    """A reward's answer: ``scores [B]`` (higher is better) and named ``components`` (each ``[B]``).

    ``failures``: sample index -> reason, for the samples the reward could not measure (e.g. the
    geometry of the video failed) and scored with its documented floor; their components are
    not measurements (``worldr1 eval`` leaves them out of the means and counts the failures).
    The trainer logs every component. ``info`` carries per-batch diagnostics that are logged as
    text (e.g. a VLM's greedy answer per sample); nothing reads it.
    """

    scores: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


@dataclass
class Rollout:
    """Samples and the sampler's record of how it produced them (see :class:`RLAlgorithm`).

    ``latents [B, S+1, C, F', H', W']``: the latent at each recorded step (index 0: initial noise,
    index -1: the clean latents that are decoded and scored); ``log_probs [B, S]``: log-probability
    of each transition under the sampling policy, or None for an algorithm that needs none;
    ``sigmas [S+1]``: the noise levels; ``train_steps``: the indices the trainer passes to
    ``RLAlgorithm.loss`` (for Flow-GRPO, transitions ``latents[:, s] -> latents[:, s+1]``);
    ``cond``: the model's prompt conditioning; ``per_sample``: algorithm tensors with a leading
    ``[B]`` dim, selected with the samples; ``extras``: anything else of the algorithm's
    (e.g. the per-step noise levels).
    """

    latents: torch.Tensor
    log_probs: torch.Tensor | None
    sigmas: torch.Tensor
    train_steps: list[int]
    cond: Any = None
    prompts: list[str] = field(default_factory=list)
    per_sample: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> torch.Tensor:
        """The denoised latents, ``[B, C, F', H', W']``."""
        return self.latents[:, -1]

    def select(self, idx: torch.Tensor, cond: Any) -> Rollout:
        """The samples ``idx [b]`` with their (re-encoded) conditioning ``cond``."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t[idx.to(t.device)]

        return Rollout(
            latents=pick(self.latents),
            log_probs=None if self.log_probs is None else pick(self.log_probs),
            sigmas=self.sigmas,
            train_steps=self.train_steps,
            cond=cond,
            prompts=[self.prompts[i] for i in idx.tolist()] if self.prompts else [],
            per_sample={k: pick(v) for k, v in self.per_sample.items()},
            extras=self.extras,
        )


@dataclass
class Phase:
    """What a schedule says about one training step.

    ``prompt_source``: the name of a prompt source in the run config's ``[prompts]`` section;
    ``reward_weights``: reward name -> weight for this phase, or None to use the weights of the
    run config's ``[[rewards]]`` entries. A reward with weight 0 is not computed.
    """

    name: str
    prompt_source: str = "train"
    reward_weights: dict[str, float] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
