"""Camera parser ``text``: ``"Camera orbit left, then pull out. A car ..."`` -> motions -> trajectory.

A prompt may start with one *camera sentence*: the word ``camera`` (optionally ``the camera`` or
``camera:``) followed by a camera verb, up to the first ``.``/``!``/``?``. The sentence lists
motions joined by ``,``, ``;``, ``then``, ``and``, ``followed by`` or ``transitioning into``.
Known motions (case-insensitive; verb forms such as ``pushes`` and adverbs such as ``slowly``
are accepted)::

    push in, pull out, move left, move right, orbit left, orbit right, pan left, pan right, fixed

A first sentence that starts with ``camera`` but not with a camera verb (``Camera lenses on a
table.``) is scene text, not an instruction. An unknown motion inside a camera sentence
(``Camera tilt up.``) raises :class:`CameraParseError` naming the phrase and the allowed motions;
``unknown_motion = "warn"`` downgrades that to a warning and drops the phrase.
"""

from __future__ import annotations

import re
import warnings
from typing import Literal

import pydantic

from worldr1_core import hookimpl
from worldr1_core.interfaces import CameraParser
from worldr1_core.types import CameraSpec, CameraTrajectory

from .keywords import strip_camera_keywords
from .motions import MOTIONS, TrajectoryConfig, build_trajectory

DEFAULT_ALIASES: dict[str, str] = {
    "static": "fixed",
    "stationary": "fixed",
    "still": "fixed",
    "locked": "fixed",
    "dolly in": "push_in",
    "dolly out": "pull_out",
    "truck left": "move_left",
    "truck right": "move_right",
}
"""Extra phrases accepted by default (phrase -> motion name); extend with ``camera.aliases``."""

# Words that make a sentence starting with "camera" an instruction rather than scene text.
_VERBS = {
    "push", "pull", "move", "orbit", "pan", "fixed", "static", "stationary", "still", "locked",
    "dolly", "truck", "tilt", "zoom", "track", "crane", "rise", "roll", "rotate", "circle", "arc",
    "follow", "stay", "remain", "hold", "slide", "drift", "spin", "swing", "boom", "pedestal",
    "glide", "fly", "turn", "shift", "descend", "ascend", "lower", "raise", "is", "slowly",
    "gently", "smoothly", "quickly", "steadily", "slightly",
}  # fmt: skip
_VERB_FORMS = {
    "pushes": "push", "pulls": "pull", "moves": "move", "orbits": "orbit", "pans": "pan",
    "tilts": "tilt", "zooms": "zoom", "tracks": "track", "rises": "rise", "rotates": "rotate",
    "circles": "circle", "stays": "stay", "remains": "remain", "holds": "hold", "slides": "slide",
    "drifts": "drift", "turns": "turn", "pushing": "push", "pulling": "pull", "moving": "move",
    "orbiting": "orbit", "panning": "pan", "dollies": "dolly",
}  # fmt: skip
_FILLER = {
    "a", "an", "the", "slowly", "gently", "smoothly", "quickly", "steadily", "slightly", "slow",
    "gradually", "finally", "then", "and", "camera", "is", "stay", "remain", "stays", "remains",
}  # fmt: skip
_SENTENCE = re.compile(
    r"^\s*(?:the\s+)?camera\b\s*[:\-]?\s*(?P<body>[^.!?\n]*)(?:[.!?]+|$)\s*", re.IGNORECASE
)
_JOINERS = r"(?:and\s+then|then|and|followed\s+by|transitioning\s+into|transitions\s+into|before|after\s+that)"
_SPLIT = re.compile(rf"\s*[,;]\s*|\s+{_JOINERS}\s+", re.IGNORECASE)
_LEADING_JOINER = re.compile(rf"^\s*{_JOINERS}\s+", re.IGNORECASE)


class CameraParseError(ValueError):
    """A camera sentence names a motion the parser does not know."""


def _normalize_phrase(phrase: str) -> str:
    words = [_VERB_FORMS.get(w, w) for w in re.findall(r"[a-z_]+", phrase.lower())]
    return " ".join(w for w in words if w not in _FILLER)


def _motion_of(phrase: str, aliases: dict[str, str]) -> str | None:
    """The motion name of one normalized phrase, or None if unknown."""
    if not phrase:
        return None
    if phrase in aliases:
        return aliases[phrase]
    name = phrase.replace(" ", "_")
    return name if name in MOTIONS else None


def parse_camera_prompt(
    text: str,
    *,
    unknown_motion: Literal["error", "warn"] = "error",
    aliases: dict[str, str] | None = None,
) -> CameraSpec:
    """Split ``text`` into its camera motions and scene description.

    >>> parse_camera_prompt("Camera orbit left, then pull out. A futuristic car.").motions
    ['orbit_left', 'pull_out']

    No camera sentence -> ``motions == []`` and ``scene == text.strip()``. ``"fixed"`` is kept as a
    motion. ``aliases`` (phrase -> motion) extends :data:`DEFAULT_ALIASES`.
    """
    table = {**DEFAULT_ALIASES, **{_normalize_phrase(k): v for k, v in (aliases or {}).items()}}
    for phrase, motion in table.items():
        if motion not in MOTIONS:
            raise ValueError(
                f"camera alias {phrase!r} -> {motion!r}: target must be one of {', '.join(MOTIONS)}"
            )
    match = _SENTENCE.match(text)
    if match is None:
        return CameraSpec(motions=[], scene=text.strip())
    body = match.group("body").strip()
    first = re.findall(r"[a-z_]+", body.lower())[:1]
    if not first or _VERB_FORMS.get(first[0], first[0]).split("_")[0] not in _VERBS:
        return CameraSpec(
            motions=[], scene=text.strip()
        )  # "Camera lenses on a table." is scene text
    motions: list[str] = []
    for raw in _SPLIT.split(body):
        raw = _LEADING_JOINER.sub("", raw)
        phrase = _normalize_phrase(raw)
        if not phrase:
            continue
        motion = _motion_of(phrase, table)
        if motion is None:
            allowed = ", ".join(m.replace("_", " ") for m in MOTIONS)
            message = (
                f"unknown camera motion {raw.strip()!r} in camera sentence {match.group(0).strip()!r}; "
                f'allowed motions: {allowed} (set camera.unknown_motion = "warn" to skip it, '
                f"or map it with camera.aliases)"
            )
            if unknown_motion == "error":
                raise CameraParseError(message)
            warnings.warn(message, stacklevel=2)
            continue
        motions.append(motion)
    return CameraSpec(
        motions=motions, scene=text[match.end() :].strip(), camera_text=match.group(0).strip()
    )


class TextCameraParser(CameraParser):
    """Camera parser ``text``: camera sentence -> motions -> piecewise trajectory."""

    class Config(pydantic.BaseModel, extra="forbid"):
        unknown_motion: Literal["error", "warn"] = pydantic.Field(
            "error", description="what an unknown motion in a camera sentence does"
        )
        aliases: dict[str, str] = pydantic.Field(
            default_factory=dict,
            description="extra phrase -> motion mappings, e.g. {'zoom in' = 'push_in'}",
        )
        trajectory: TrajectoryConfig = pydantic.Field(default_factory=TrajectoryConfig)
        force_motions: list[str] | None = pydantic.Field(
            None,
            description="every prompt gets these motions whatever its text (the release's "
            "force_camera_movement, for ablations); [] or ['fixed']: a fixed camera",
        )

        remove_camera_keywords: Literal["off", "trajectory", "prompt"] = pydantic.Field(
            "off",
            description="the release's remove_camera_keywords ablation: 'trajectory' builds the "
            "camera path from the prompt without its motion phrases (so no warp) while the model "
            "reads the full prompt, as the release trains and evaluates; 'prompt' also feeds the "
            "model the stripped prompt",
        )

        @pydantic.field_validator("force_motions")
        @classmethod
        def _known(cls, value: list[str] | None) -> list[str] | None:
            for motion in value or []:
                if motion not in MOTIONS:
                    raise ValueError(
                        f"camera.force_motions: unknown motion {motion!r}; expected one of "
                        f"{', '.join(MOTIONS)}"
                    )
            return value

    def parse(self, text: str) -> CameraSpec:
        if self.config.remove_camera_keywords != "off":
            text = strip_camera_keywords(text)
        spec = parse_camera_prompt(
            text, unknown_motion=self.config.unknown_motion, aliases=self.config.aliases
        )
        forced = self.config.force_motions
        if forced is not None:
            motions = [m for m in forced if m != "fixed"]
            return CameraSpec(motions=motions, scene=spec.scene, camera_text=spec.camera_text)
        return spec

    def model_text(self, text: str) -> str:
        if self.config.remove_camera_keywords == "prompt":
            return strip_camera_keywords(text)
        return text

    def trajectory(
        self, spec: CameraSpec, frames: int, width: int, height: int
    ) -> CameraTrajectory:
        return build_trajectory(spec.motions, frames, width, height, self.config.trajectory)


@hookimpl
def worldr1_register_camera_parsers(register):
    register(
        "text",
        TextCameraParser,
        description="'Camera orbit left, then pull out. ...' -> piecewise camera path",
    )
