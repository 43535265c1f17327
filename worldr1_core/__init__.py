"""worldr1: plugin-based RL post-training of text-to-video models toward 3D consistency.

Plugin authors need three names from here::

    from worldr1_core import hookimpl                 # decorate your hook functions
    from worldr1_core.interfaces import Reward        # ... or any other component base class
    from worldr1_core.types import RewardBatch, RewardOutput
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "worldr1"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations in plugins: ``@hookimpl def worldr1_register_rewards(register): ...``."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
