"""Helpers for the background tasks services own (started in the app's lifespan)."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None entries are skipped) and wait until all have finished; how they
    ended (cancelled, or an error they raised on the way out) is not reported."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
