"""One-line errors for problems a user can fix; tracebacks only for real bugs (or TONETUNE_DEBUG=1)."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from tonetune.errors import ToneTuneError

CONFIG_ERRORS = (HydraException, OmegaConfBaseException)
HIDDEN_OPTIONS = {"schema"}  # typed schemas in Hydra's ConfigStore, not choices
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def one_line(err: BaseException) -> str:
    """Collapse a multi-line message (Hydra's list of options, OmegaConf's key report) into one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    head = lines[0] if lines else type(err).__name__
    if head.startswith("In '") and ": " in head:
        head = head.split(": ", 1)[1]
    if isinstance(err, MissingConfigException) and err.options:
        visible = [o for o in err.options if o not in HIDDEN_OPTIONS and not o.startswith("_")]
        return f"{head} (available: {', '.join(visible)})"
    cause = err.__cause__
    if not isinstance(err, ToneTuneError) and cause is not None and str(cause).strip():
        return f"{head.rstrip('.')}: {str(cause).strip().splitlines()[0]}"
    return " ".join(
        line for line in lines if not line.startswith(("full_key", "object_type", "reference_type"))
    )


def disk_error(err: BaseException) -> str | None:
    """A full (or read-only) disk anywhere in the exception chain, as one line naming the file."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_ERRORS:
            where = f"cannot write {seen.filename}" if seen.filename else "cannot write"
            return f"{where}: {seen.strerror} (free some space, or point paths.* at another disk)"
        text = str(seen)
        if "No space left on device" in text or "File too large" in text:
            return f"cannot write: {text.splitlines()[0]} (free some space, or point paths.* at another disk)"
        seen = seen.__cause__ or seen.__context__
    return None


def fail(name: str, message: str) -> NoReturn:
    """Print ``name: error: <one line>`` and exit with status 2."""
    print(f"{name}: error: {message}", file=sys.stderr)
    sys.exit(2)


def exit_on_user_error(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a Hydra task so user errors (bad data, a wrong option, a full disk) end it in one line.

    ``SystemExit`` passes through Hydra's job runner, so Hydra adds no report of its own.
    """

    def decorate(task: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(task)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if os.environ.get("TONETUNE_DEBUG"):
                return task(*args, **kwargs)
            try:
                return task(*args, **kwargs)
            except (ToneTuneError, *CONFIG_ERRORS) as err:
                fail(name, one_line(err))
            except Exception as err:
                message = disk_error(err)
                if message is None:
                    raise
                fail(name, message)

        return wrapped

    return decorate


def run_app(app: Callable[[], object], name: str) -> None:
    """Run a Hydra app; config errors (unknown option, misspelled key) print as one line and exit 2."""
    from tonetune.config import register_configs
    from tonetune.runtime import quiet_libraries

    register_configs()
    quiet_libraries()
    if os.environ.get("TONETUNE_DEBUG"):
        app()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's report
    try:
        app()
    except CONFIG_ERRORS as err:
        fail(name, one_line(err))
