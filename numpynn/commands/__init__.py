"""The `numpynn` command's commands, one module per concern; numpynn/cli.py makes the flags and runs them.

    common.py   the two kinds of error, flags into a config, output folders, loading a model file
    seed.py     numpynn seed
    train.py    numpynn train
    models.py   evaluate, calibrate, predict, info, report, export, augment-preview
    serve.py    serve, examples
    scale.py    ensemble, sweep
"""
