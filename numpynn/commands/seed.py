"""numpynn seed: the seed's whole program (numpynn/seed.py, or its fast twin numpynn/seed_fast.py)."""
from __future__ import annotations

import dataclasses
import json
import time

from ..checks import OptionError
from ..data import load_mnist
from ..seed import SeedConfig, run_seed
from .common import UsageError, config_from_flags, flag_error, make_folder, output_folder, single_threaded_blas


def cmd_seed(args) -> int:
    started = time.perf_counter()
    config = config_from_flags(SeedConfig, args)
    if args.plot:
        output_folder(args.plot, "--plot")  # now, not after a minute of training
        if config.print_every == 0:
            raise UsageError("--plot draws the loss recorded every --print-every iterations; use --print-every 1 "
                             "or more")
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=config.dev_size, seed=config.seed, progress=not args.quiet)
    except OptionError as error:  # a dev set as large as the training set
        raise flag_error(error) from None
    with single_threaded_blas(config.threads > 1 and not args.plain):  # the fast path's threads, one per core
        result = run_seed(splits, config, log=None if args.quiet else print, plain=args.plain)
    print(f"Train Accuracy: {100 * result['train_accuracy']:.2f}%")
    print(f"Dev Accuracy: {100 * result['dev_accuracy']:.2f}%")
    print(f"Test Accuracy: {100 * result['test_accuracy']:.2f}%")
    if args.plot:
        from ..report import save_figure, seed_loss

        title = (f"The seed: 784-{config.hidden}-10, full batch, alpha = {config.alpha:g}; test accuracy "
                 f"{100 * result['test_accuracy']:.2f}%")
        print(f"Plot: {save_figure(seed_loss(result['losses'], title), make_folder(args.plot) / 'seed_loss.png')}")
    if args.json:
        summary = {key: result[key] for key in ("train_accuracy", "dev_accuracy", "test_accuracy")}
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["train_seconds"] = round(result["seconds"], 3)
        summary["config"] = dataclasses.asdict(config)
        summary["plain"] = args.plain
        print(json.dumps(summary))
    return 0
