"""Errors a user can fix: each message names the file, field or option at fault."""


class ToneTuneError(Exception):
    """Base class for problems in the user's input or set-up (printed as one line, no traceback)."""


class DataError(ToneTuneError):
    """A training or evaluation dataset is missing or malformed."""


class ConfigError(ToneTuneError):
    """A combination of options that tonetune does not support."""


class ModelNotFoundError(ToneTuneError):
    """A base model or a run folder cannot be found."""


class DivergedError(ToneTuneError):
    """Training whose loss or weights stopped being finite, or a saved model whose weights are not."""
