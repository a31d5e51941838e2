"""BLAS threads for the server: one for predictions, all of them while a Learn-tab run trains (one_blas_thread).
"""
from __future__ import annotations

import asyncio

from fastapi import FastAPI


def one_blas_thread(app: FastAPI) -> None:
    """Run this process's BLAS on one thread, except while a Learn-tab run trains (it gets them all back).

    One digit's products are far too small to gain from threads, and when the cores are busy, waiting for
    BLAS's threads costs more than the product itself: 784x800 for one digit measured 12 ms with two threads
    on a loaded 2-core machine, 0.07 ms with one. `numpynn serve` calls this, from the thread that then runs
    the event loop: OpenBLAS takes a new thread count only from that thread (one set from another thread is
    ignored), so the run's end hands the change back to the event loop."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    threadpool_limits(1, user_api="blas")  # for the whole process, until a run asks for more
    loops = []

    def on_start():  # in POST /api/train's handler, on the event loop's thread
        loops[:] = [asyncio.get_running_loop()]
        threadpool_limits(threads, user_api="blas")

    def on_end():  # in the run's thread
        loops[0].call_soon_threadsafe(threadpool_limits, 1, "blas")

    app.state.trainer.on_start, app.state.trainer.on_end = on_start, on_end
