"""The scene part of a World-R1 prompt: the prompt without its camera sentence.

"Camera orbit left, then pull out. A futuristic car." -> "A futuristic car." Judges of the
picture (HPSv2, the meta-view VLM) are asked about the scene, not about the camera instruction.
When a camera parser plugin is installed (``camera_parser = "text"`` by default) its ``parse``
decides; otherwise a leading sentence starting with "Camera" is dropped.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

_CAMERA_SENTENCE = re.compile(r"^\s*camera\b[^.!?]*[.!?]\s*", re.IGNORECASE)


def strip_camera_sentence(prompt: str) -> str:
    """Drop a leading sentence that starts with "Camera"; keep the prompt if nothing else is left."""
    scene = _CAMERA_SENTENCE.sub("", prompt, count=1)
    return scene if scene.strip() else prompt


class SceneText:
    """``SceneText(parser_name)(prompt) -> scene``; the parser is looked up once, lazily."""

    def __init__(self, parser_name: str | None = "text"):
        self.parser_name = parser_name
        self._parser = None
        self._looked_up = parser_name is None

    def _lookup(self):
        if not self._looked_up:
            self._looked_up = True
            from worldr1_core.registry import get_registry

            registry = get_registry()
            if self.parser_name in registry.names("camera_parser"):
                self._parser = registry.build("camera_parser", self.parser_name)
            else:
                log.info(
                    "camera parser %r not installed; using the 'Camera ...' sentence rule",
                    self.parser_name,
                )
        return self._parser

    def __call__(self, prompt: str) -> str:
        parser = self._lookup()
        if parser is None:
            return strip_camera_sentence(prompt)
        try:
            scene = parser.parse(prompt).scene
        except (
            ValueError
        ) as exc:  # e.g. an unknown motion under a strict parser: the text still has a scene
            log.warning(
                "camera parser %r could not parse %r (%s); using the 'Camera ...' sentence rule",
                self.parser_name,
                prompt[:80],
                exc,
            )
            return strip_camera_sentence(prompt)
        return scene if scene.strip() else prompt
