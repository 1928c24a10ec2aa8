"""Validation and prediction input read by threads, one batch ahead of the model.

Threads, not DataLoader processes: forking workers for every validation while the training
loader's workers and queue threads are alive can deadlock the new workers, and image decoding
(OpenCV, PIL) releases the GIL, so threads overlap reading with the forward pass well enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["threaded_batches"]

Item = TypeVar("Item")


def threaded_batches(
    items: Sequence[Item],
    batch_size: int,
    threads: int,
    collate: Callable[[list[Item]], Any],
) -> Iterator[Any]:
    """``collate`` of consecutive chunks of ``items``, in order.

    Args:
        items: a sequence whose ``__getitem__`` does the reading and preprocessing.
        batch_size: items per batch (the last batch may be smaller).
        threads: reader threads; 0 reads in the calling thread. With threads, the next
            batch's items are being read while the caller works on the current batch.
        collate: list of items -> batch.

    Raises:
        Whatever an item's ``__getitem__`` raises, when its batch is reached.
    """
    starts = range(0, len(items), batch_size)
    if threads <= 0:
        for start in starts:
            stop = min(start + batch_size, len(items))
            yield collate([items[i] for i in range(start, stop)])
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cmseg-read") as pool:

        def submit(start: int) -> list[Future[Item]]:
            stop = min(start + batch_size, len(items))
            return [pool.submit(items.__getitem__, i) for i in range(start, stop)]

        pending = submit(0) if len(items) else []
        for start in starts:
            current = pending
            if start + batch_size < len(items):
                pending = submit(start + batch_size)
            yield collate([f.result() for f in current])
