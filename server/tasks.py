"""Helpers for the background tasks services own (started in the app's lifespan)."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]

# How long a cancelled task gets to end (its cleanup included) before it is cancelled again.
RECANCEL_S = 0.5


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None entries are skipped) and wait until all have finished; how they
    ended (cancelled, or an error they raised on the way out) is not reported.

    A task still running after `RECANCEL_S` is cancelled again: redis-py (8.1) can swallow a
    cancellation that lands inside a command, and a loop that swallowed it would run on forever
    (measured: about half of the cancellations of a task looping on HSET).
    """
    running = [task for task in tasks if task is not None]
    pending = {task for task in running if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved, so it is not logged as never retrieved
