"""The batcher: every request gets its own result, batches form under load, errors reach every caller."""

from __future__ import annotations

import asyncio
import threading

from intentrec.serving.batching import Batcher


def test_requests_queued_while_a_batch_computes_form_the_next_batch() -> None:
    started, release, batches = threading.Event(), threading.Event(), []

    def compute(items: list[int]) -> list[int]:
        batches.append(list(items))
        started.set()
        release.wait(5)  # the first batch holds the thread until every other request is queued
        return [item * 10 for item in items]

    batcher = Batcher(compute, max_batch=3)

    async def main() -> list[int]:
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.to_thread(started.wait, 5)
        rest = [asyncio.create_task(batcher.submit(item)) for item in range(1, 6)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]
    batcher.close()
    assert batches == [[0], [1, 2, 3], [4, 5]]


def test_an_error_in_compute_is_raised_to_every_request_of_the_batch() -> None:
    def compute(items: list[int]) -> list[int]:
        raise RuntimeError("model failed")

    batcher = Batcher(compute)

    async def main() -> list[object]:
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    results = asyncio.run(main())
    batcher.close()
    assert all(isinstance(result, RuntimeError) and str(result) == "model failed" for result in results)
