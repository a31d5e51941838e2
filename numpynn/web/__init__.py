"""The web page: draw a digit and watch the network read it, or watch a network learn. `numpynn serve` runs it.

    registry.py   the models the page may use, by name (a client never sends a path)
    inside.py     what the page shows of a model's inside: hidden activations, a unit's incoming weights
    learn.py      one training run at a time, in a background thread, with its live events
    app.py        the FastAPI app: the routes, the request limits, one error format
    static/       the page itself: plain HTML, CSS and JavaScript, served by numpynn (no CDN)

Nothing here is imported by `import numpynn`: the CLI imports numpynn.web.app only for `numpynn serve`, so the
rest of numpynn never needs FastAPI.
"""
