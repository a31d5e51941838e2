"""The web page: draw a digit and watch the network read it, or watch a network learn. `numpynn serve` runs it.

    registry.py     the models the page may use, by name (a client never sends a path)
    inside.py       what the page shows of a model's inside: hidden activations, a unit's incoming weights
    learn.py        one training run at a time, in a background thread, with its live events
    app.py          the FastAPI app: its assembly and its routes
    limits.py       the request body limit (413 before a huge body is held)
    pictures.py     a digit from a request body: raw pixels, a JSON array, an uploaded picture
    turns.py        predictions take turns at the CPU, first come, first served
    fastpredict.py  POST /api/predict, answered ahead of FastAPI's routing
    answers.py      JSON with NumPy arrays, and the one error format
    openapi.py      /docs, and the prediction body FastAPI cannot infer
    events.py       a training run's events as server-sent events
    blas.py         one BLAS thread for predictions, all of them while a training run trains
    guard.py        whom the server obeys (Host, Origin, the token)
    server.py       uvicorn with header timeouts, a connection cap and a shutdown that saves a run
    static/         the page itself: plain HTML, CSS and JavaScript, served by numpynn (no CDN)

Nothing here is imported by `import numpynn`: the CLI imports numpynn.web.app only for `numpynn serve`, so the
rest of numpynn never needs FastAPI.
"""
