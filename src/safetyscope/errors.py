"""Exceptions raised by safetyscope.

Every error a user can trigger derives from :class:`SafetyscopeError` and carries a message
that says what went wrong *and* what to do about it. The CLI prints these without a traceback.
"""

from __future__ import annotations


class SafetyscopeError(Exception):
    """Base class for user-facing errors (bad input, missing model, unsupported architecture)."""


class ModelLoadError(SafetyscopeError):
    """A model spec could not be resolved or loaded (missing path, malformed directory, offline hub)."""


class UnknownArchitectureError(SafetyscopeError):
    """No architecture map matches the model; the message lists candidate module paths."""


class OutputExistsError(SafetyscopeError):
    """An output path already exists and ``force`` was not given."""


class PromptError(SafetyscopeError):
    """A prompt set is empty, too small, malformed, or a substring/position cannot be found."""


class EvaluationError(SafetyscopeError):
    """Evaluation input is unusable: a malformed completions file, mismatched lists or vocabularies."""


class UnsafeOutputError(SafetyscopeError):
    """An output path would overwrite an input, is not writable, or is not ours to replace."""


class ConfigError(SafetyscopeError):
    """A configuration file or value is invalid (the message names the key)."""


class OptionError(SafetyscopeError):
    """A command-line option or API argument is out of range, NaN, or malformed."""


class BusyError(SafetyscopeError):
    """Another process holds the lock on an output folder (e.g. a concurrent audit)."""


class CacheError(SafetyscopeError):
    """A cache entry is unreadable; the message says which folder to delete to recover."""


class IntegrityError(ModelLoadError):
    """A model's weights do not match its architecture (missing or unexpected keys)."""
