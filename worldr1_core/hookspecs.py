"""Hook specifications of worldr1.

A plugin is a module with functions named like the specs below and decorated with
``worldr1_core.hookimpl``. Shipped plugins (``worldr1_plugins/registry.toml``) and third-party
ones (entry-point group ``worldr1``) are loaded the same way.

Registration hooks receive one argument, ``register``, with the signature
``register(name: str, factory, *, description: str = "")``. ``factory`` is usually a component
class from :mod:`worldr1_core.interfaces`; it must carry a pydantic ``Config`` attribute
(``extra="forbid"``) and build the component as ``factory(config)``. Registering a name that
another plugin already registered for the same kind is an error naming both plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from . import PROJECT_NAME

if TYPE_CHECKING:  # pragma: no cover - types of the hook arguments, for readers and mypy
    import argparse

    from .registry import Register
    from .rewards import ComposedReward
    from .trainer import Trainer
    from .types import Phase

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --------------------------------------------------------------------------- registration hooks


@hookspec
def worldr1_register_base_models(register: Register) -> None:
    """Register text-to-video base models (:class:`~worldr1_core.interfaces.VideoModel`).

    Called once, when the registry is first built, for every loaded plugin.
    ``register(name, factory, description=...)`` adds one model under ``name`` (the value of
    ``model.name`` in run configs). Returns nothing.
    """


@hookspec
def worldr1_register_latent_initializers(register: Register) -> None:
    """Register initial-latent makers (:class:`~worldr1_core.interfaces.LatentInitializer`).

    Called once when the registry is built. Each registered name is a valid
    ``latent_init.name``. Returns nothing.
    """


@hookspec
def worldr1_register_camera_parsers(register: Register) -> None:
    """Register camera parsers (:class:`~worldr1_core.interfaces.CameraParser`): prompt text ->
    motions -> :class:`~worldr1_core.types.CameraTrajectory`.

    Called once when the registry is built. Each registered name is a valid ``camera.name``.
    Returns nothing.
    """


@hookspec
def worldr1_register_geometry_estimators(register: Register) -> None:
    """Register geometry estimators (:class:`~worldr1_core.interfaces.GeometryEstimator`):
    video -> depth, camera poses, intrinsics and Gaussians, shared by the 3D rewards.

    Called once when the registry is built. Each registered name is a valid
    ``geometry.name``. Returns nothing.
    """


@hookspec
def worldr1_register_rewards(register: Register) -> None:
    """Register rewards (:class:`~worldr1_core.interfaces.Reward`).

    Called once when the registry is built. Each registered name can appear as
    ``[[rewards]] name = ...``; the entry's other keys (besides ``weight`` and ``server``) are
    validated by the reward's ``Config``. Returns nothing.
    """


@hookspec
def worldr1_register_rl_algorithms(register: Register) -> None:
    """Register RL algorithms (:class:`~worldr1_core.interfaces.RLAlgorithm`): a sampler that
    records log-probabilities and a policy loss.

    Called once when the registry is built. Each registered name is a valid ``rl.name``.
    Returns nothing.
    """


@hookspec
def worldr1_register_schedules(register: Register) -> None:
    """Register phase schedules (:class:`~worldr1_core.interfaces.Schedule`): training step ->
    :class:`~worldr1_core.types.Phase`.

    Called once when the registry is built. Each registered name is a valid
    ``schedule.name``. Returns nothing.
    """


@hookspec
def worldr1_register_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add subcommands to the ``worldr1`` command line.

    Called once per CLI invocation, before arguments are parsed, with the argparse
    sub-parser collection of the top-level parser. A plugin adds its parser with
    ``p = subparsers.add_parser("name", help=...)`` and sets ``p.set_defaults(func=callable)``
    (:func:`worldr1_core.cli_help.add_command` does both, with examples in ``--help``); the
    callable receives the parsed ``argparse.Namespace`` and returns an exit code (or None for 0).
    Returns nothing.
    """


# --------------------------------------------------------------------------- lifecycle hooks


@hookspec
def worldr1_on_train_start(trainer: Trainer) -> None:
    """Called once on every process after the trainer has built all components and before
    the first step. ``trainer`` gives access to ``config``, ``model``, ``run_dir``. Returns nothing."""


@hookspec
def worldr1_on_step_end(trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
    """Called on every process after each optimisation step, with the global ``step`` (the
    number of finished steps: 1 after the first; the number the console, ``metrics.jsonl``,
    trackers, samples and checkpoints show) and the flat dict of its logged ``metrics``
    (``phase``, reward components, the RL algorithm's ``train/*`` metrics, timings). The step's
    prompts and total rewards per sample are ``trainer.last_prompts`` / ``trainer.last_rewards``.
    Loggers and callbacks read it; mutations are ignored. Returns nothing."""


@hookspec
def worldr1_on_phase_change(
    trainer: Trainer, step: int, previous: Phase | None, phase: Phase
) -> None:
    """Called when the phase of the step about to run differs from the previous step's
    (``previous`` is None at the first step). ``step`` is that step's global number (1 for the
    first step; the schedule's own ``phase(index)`` uses the 0-based index ``step - 1``). ``phase`` and ``previous`` are
    :class:`~worldr1_core.types.Phase`. Returns nothing."""


@hookspec
def worldr1_on_checkpoint_saved(trainer: Trainer, step: int, path: str) -> None:
    """Called on the main process after a checkpoint for ``step`` has been written atomically
    to the directory ``path``. Returns nothing."""


@hookspec
def worldr1_on_samples_saved(
    trainer: Trainer, step: int, paths: list[str], scored: ComposedReward
) -> None:
    """Called on the main process after the sample videos of ``step`` were written: ``paths[i]``
    is the video of sample ``i`` and ``scored`` the step's
    :class:`~worldr1_core.rewards.ComposedReward` (each reward's ``info`` under its name), so a
    plugin can save pictures beside the videos (e.g. the trajectory comparison). Returns nothing."""


@hookspec
def worldr1_on_train_end(trainer: Trainer, metrics: dict[str, Any]) -> None:
    """Called once on every process after the last step, with the last step's metrics (empty if
    no step ran). Returns nothing."""


REGISTRATION_HOOKS: dict[str, str] = {
    "base_model": "worldr1_register_base_models",
    "latent_initializer": "worldr1_register_latent_initializers",
    "camera_parser": "worldr1_register_camera_parsers",
    "geometry_estimator": "worldr1_register_geometry_estimators",
    "reward": "worldr1_register_rewards",
    "rl_algorithm": "worldr1_register_rl_algorithms",
    "schedule": "worldr1_register_schedules",
}
"""Component kind -> the hook that registers components of that kind."""
