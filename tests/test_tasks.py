"""cancel_and_wait (server/tasks.py): background tasks end even if they swallow a cancellation."""

from __future__ import annotations

import asyncio

from server.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def loop_like_a_redis_client_can() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 1:
                    continue  # as redis-py can, inside a command
                raise

    task = asyncio.create_task(loop_like_a_redis_client_can())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled() and swallowed == 2


async def test_errors_of_the_tasks_and_none_entries_are_not_raised() -> None:
    async def fail_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fail_on_cancel())
    await asyncio.sleep(0)
    await cancel_and_wait(task, None)
    assert isinstance(task.exception(), RuntimeError)
