"""What every command shares: its two kinds of error, flags made into a config, output folders checked before any
work, a model file (or the built-in model) loaded with its errors in one line."""
from __future__ import annotations

import contextlib
import dataclasses
import sys

from ..checks import OptionError


class UsageError(Exception):
    """A flag's value is out of range. Reported like argparse's own errors, with exit code 2."""


class CommandError(Exception):
    """The command cannot do its job with what it was given (a bad model file, a blank picture, a diverged
    run). One line, exit code 1."""


def single_threaded_blas(limit: bool):
    """BLAS limited to one thread while `limit`: for work that runs its own threads (seed_fast's trick 5)."""
    if not limit:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def config_from_flags(config_cls, args):
    """A config dataclass from the flags _add_config_options made; its range errors name the flag."""
    try:
        return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})
    except OptionError as error:  # the config's own range checks
        raise flag_error(error) from None


def flag_error(error: OptionError) -> UsageError:
    """An option's error in the command line's words: the flag, not the field (--dev-size, not dev_size)."""
    return UsageError(str(error.renamed("--" + error.name.replace("_", "-"))))


def output_folder(folder, flag: str, may_create: bool = True, value=None):
    """The folder a flag names, checked before any work starts: a read-only or missing folder is one line
    now, not a traceback after the run has trained. With may_create it may be missing if its parent is
    writable; make_folder makes it when the first file is written. value: what the user typed, when it is
    a file in that folder (--out model.npz)."""
    import os

    from ..atomic import OutputError, check_folder

    try:
        checked = check_folder(folder, f"{flag} {folder if value is None else value}", may_create=may_create)
    except OutputError as error:
        raise UsageError(str(error)) from None
    if value is not None and os.path.exists(value) and not os.path.isfile(value):  # else found only when written
        raise UsageError(f"{flag} {value}: a folder or other non-regular file is there; choose a file name")
    return checked


def make_folder(path):
    import pathlib

    folder = pathlib.Path(path)
    folder.mkdir(exist_ok=True)  # output_folder saw that the parent exists
    return folder


def load_model_file(path):
    """(model, header) of the file at `path`; None: the built-in model, saying so on stderr."""
    from ..serialize import ModelFileError, load_model

    builtin = path is None
    try:
        model, header = load_model(builtin_path_or_error() if builtin else path)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    if builtin:
        from ..models import builtin_label

        print(f"model: {builtin_label(header)}", file=sys.stderr)
    return model, header


def builtin_path_or_error():
    from ..models import builtin_path

    path = builtin_path()
    if not path.is_file():
        raise CommandError(f"this numpynn has no built-in model ({path} is missing): give a model file written "
                           "by numpynn train, or reinstall numpynn")
    return path
