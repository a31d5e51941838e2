"""numpynn serve (the web page, numpynn/web/) and numpynn examples (your stored handwriting)."""
from __future__ import annotations

import json
import sys

from .common import CommandError, UsageError, builtin_path_or_error, load_model_file, make_folder, output_folder

MIN_TOKEN = 16  # characters of a token set by $NUMPYNN_TOKEN: a short one could be guessed


def cmd_serve(args) -> int:
    import ipaddress
    import os
    import pathlib
    import socket

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is out of range: use 1 to 65535 (or 0 for any free port)")
    check_models_folder(args.models, "create it first or leave --models out")
    for name in args.allow_host:
        if not name or any(c in name for c in "/:@ []"):
            raise UsageError(f"--allow-host {name!r}: give a host name, such as mybox.lan (no port, no scheme)")
    token = os.environ.get("NUMPYNN_TOKEN") or None  # from the environment, not a flag: ps shows flags to all
    if token is not None and (len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable()):
        raise UsageError(f"$NUMPYNN_TOKEN: use at least {MIN_TOKEN} printable ASCII characters, e.g. the output "
                         f"of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it")
    if args.model is not None:
        _, header = load_model_file(args.model)  # a bad file fails here, in one line, not in the page
        if header.get("kind") != "model":
            raise CommandError(f"{args.model}: a checkpoint, not a model file (use the model .npz it belongs to)")
    builtin = _builtin_for_serve(args.model)  # (path, header), or None
    # The web code needs FastAPI: imported here so every other command (and `import numpynn`) stays light.
    from ..atomic import OutputError, check_folder
    from ..web.app import create_app
    from ..web.blas import one_blas_thread
    from ..web.guard import host_names
    from ..web.registry import default_models_dir
    from ..web.server import listen, make_server

    try:
        sock = listen(args.host, args.port)  # now, so a busy port is one clear line, before anything starts
    except socket.gaierror as error:
        raise UsageError(f"--host {args.host}: not an address of this machine ({error.strerror})") from None
    except OSError as error:
        raise CommandError(f"cannot listen on {args.host}:{args.port} ({error.strerror}); choose another "
                           f"--port") from None
    folder = pathlib.Path(args.models) if args.models else default_models_dir()
    app = create_app(folder, args.model, data_dir=args.data, dataset=args.dataset, token=token,
                     hosts=host_names(args.host, args.allow_host), builtin=builtin and builtin[0])
    one_blas_thread(app)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    n = len(app.state.models.names())
    print(f"numpynn: serving {n} model{'s' * (n != 1)} (folder {folder}) on http://{shown}:{port}/ "
          f"(Ctrl-C to stop)", flush=True)
    print(f"numpynn: scripts that start or stop training send the header X-Numpynn-Token: {app.state.token}",
          flush=True)
    try:
        if not args.models and not folder.exists():  # the default folder, on first use: made, as apps make theirs
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"the models folder {folder} could not be made ({error.strerror}); give "
                                  f"another with --models") from None
        check_folder(folder, f"--models {folder}", may_create=True)
    except OutputError as error:  # the page still reads digits; only the Learn tab needs to write
        print(f"numpynn: warning: {error}; until then the Learn tab cannot save its runs", file=sys.stderr)
    if builtin is not None:
        from ..models import builtin_label

        first = "model:" if args.model is None else f"models: {args.model} first, then the"
        print(f"{first} {builtin_label(builtin[1])}", file=sys.stderr, flush=True)
    if not ipaddress.ip_address(host).is_loopback:
        print(f"numpynn: warning: listening on {host}: other machines can open the page and start training "
              f"runs; use --host 127.0.0.1 to keep it to this machine", file=sys.stderr)
    make_server(app, say=lambda line: print(line, file=sys.stderr, flush=True)).run(sockets=[sock])
    return 0


def check_models_folder(models, fix: str) -> None:
    """UsageError unless --models (if given) names a folder; `fix` says what to do when it does not exist."""
    import pathlib

    if models is None or pathlib.Path(models).is_dir():
        return
    if pathlib.Path(models).exists():
        raise UsageError(f"--models {models}: a file, not a folder; give the folder that holds the models")
    raise UsageError(f"--models {models}: no such folder; {fix}")


def _builtin_for_serve(model):
    """(path, header) of the built-in model for `numpynn serve`, loaded now so that a damaged one fails in one
    line before anything starts; None if it is missing or damaged and MODEL was given (MODEL is enough)."""
    from ..serialize import ModelFileError, load_model

    try:
        path = builtin_path_or_error()
        return path, load_model(path)[1]
    except (CommandError, ModelFileError) as error:
        if model is None:
            raise CommandError(str(error)) from None
        return None


def cmd_examples(args) -> int:
    """numpynn examples list | delete ID | delete --all | export DIR: the digits stored from the page."""
    import pathlib
    import shutil

    import numpy as np

    from .. import extra_data
    from ..checks import whole_number
    from ..examples_db import MAX_ID, Examples, ExamplesError
    from ..web.registry import default_models_dir

    check_models_folder(args.models, "give the folder `numpynn serve` uses")
    store = Examples(pathlib.Path(args.models) if args.models else default_models_dir())
    if args.all and args.action != "delete":
        raise UsageError("--all goes with delete: numpynn examples delete --all")
    try:
        if args.action == "list":
            if args.target is not None:
                raise UsageError(f"list takes no argument, not {args.target!r}")
            rows, counts = store.rows(), store.counts()
            if args.json:
                print(json.dumps({"database": str(store.path), "counts": counts, "examples": rows}))
                return 0
            for row in rows:
                guess = "-" if row["predicted"] is None else row["predicted"]
                print(f"{row['id']:>6}  label {row['label']}  model said {guess}  {row['created']}  {row['model']}")
            print(f"{sum(counts)} example{'s' * (sum(counts) != 1)} in {store.path}; per label 0-9: "
                  f"{' '.join(map(str, counts))}")
        elif args.action == "delete":
            if args.all == (args.target is not None):
                raise UsageError("give one example's ID (from `numpynn examples list`) or --all")
            if args.all:
                print(f"Deleted {store.delete_all()} examples from {store.path}")
            else:
                example_id = whole_number(args.target, 1, MAX_ID)  # ASCII digits only: not '²'
                if example_id is None:
                    raise UsageError(f"ID {args.target[:40]!r}: give a number from 1 to {MAX_ID}, as `numpynn "
                                     f"examples list` shows them")
                if not store.delete(example_id):
                    raise CommandError(f"no example {example_id} in {store.path} (see `numpynn examples list`)")
                print(f"Deleted example {example_id}")
        else:
            if args.target is None:
                raise UsageError("export needs a folder: numpynn examples export DIR")
            folder = output_folder(args.target, "export", may_create=True)
            images, labels = store.arrays()
            if not len(labels):
                raise CommandError(f"no examples in {store.path}; confirm or correct some answers on the page's "
                                   f"Draw tab first")
            made = not pathlib.Path(folder).exists()
            make_folder(folder)
            try:
                paths = extra_data.export(folder, images, labels)
            except BaseException:
                if made:  # nothing half-written: the folder this export made goes, with what it holds
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            print(f"Wrote {len(labels)} examples to {paths[0]} and {paths[1]} (per label 0-9: "
                  f"{' '.join(map(str, np.bincount(labels, minlength=10)))}); train with "
                  f"`numpynn train --extra-data {folder}`")
    except ExamplesError as error:
        raise CommandError(str(error)) from None
    return 0
