"""The errors a user can fix, all under :class:`UserError`.

``worldr1`` (:func:`worldr1_core.cli.main`) prints a :class:`UserError` as one line,
``worldr1: error: MESSAGE``, and exits with status 2; any other exception is a bug and keeps its
traceback. Raise a :class:`UserError` subclass only with a message that names what to change
(the config key and file, the flag, the plugin) and the expected form. Each subclass also
derives from the builtin exception it refines, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, flags, files, installed plugins)."""


class ConfigError(UserError, ValueError):
    """A run config that cannot be composed or validated. ``str(err)`` is ready for the user."""


class RegistryError(UserError, LookupError):
    """Duplicate registration, unknown component name, or a malformed factory."""


class PromptError(UserError, ValueError):
    """A prompt source that cannot be read or is exhausted."""


class PluginLoadError(UserError, RuntimeError):
    """A plugin could not be imported or registered."""


class CommandError(UserError, RuntimeError):
    """Bad command-line arguments or inputs of a ``worldr1`` command (core or plugin)."""


class EvalError(CommandError):
    """A user-facing evaluation problem (``worldr1 eval``)."""


class InferenceError(CommandError):
    """A user-facing inference problem (bad arguments, mismatching resume)."""
