"""Training batches built ahead by DataLoader worker processes, one whole iteration per item.

A training batch of this project is a pure function of (seed, iteration)
(:class:`qgait_lab.experiments.pipeline.TrainBatches`): the P x K sampler picks
the sequences from (seed, iteration), and each sequence's frames and
augmentation are seeded by (seed, iteration, position in the global batch).
So a whole iteration is the natural unit of work for a worker process:

* :class:`IterationDataset` is a map-style dataset whose item ``i`` is the
  batch of iteration ``i``;
* :class:`IterationSampler` walks the iterations ``start .. end - 1`` of a stage;
* :class:`BatchStream` loads them through ``torch.utils.data.DataLoader`` with
  ``batch_size=None`` (no collation: an item already is a batch), so several
  workers build different iterations at once and the DataLoader hands them
  back in the sampler's order.

Iteration ``i`` therefore receives exactly the batch that the serial call
``make_batch(i)`` returns, whatever the number of workers, and a resumed run
simply starts its stream at the resume iteration.

OpenGait's loader (``BaseModel.get_loader`` in opengait/modeling/base_model.py)
also has each worker build a whole batch, through the TripletSampler as
``batch_sampler`` and ``num_workers`` from ``data_cfg`` (1 in
configs/gaitbase/gaitbase_da_casiab.yaml).  Its CollateFn draws the frames from
the worker process's global ``random`` and ``numpy.random`` state
(opengait/data/collate_fn.py), so there a batch is not a function of the
iteration alone; here it is, and the tests compare the two paths with
``torch.equal``.

Each worker keeps its own copy of the dataset, and so its own sequence cache
(:class:`qgait_lab.data.dataset.GaitDataset`).  Finished batches travel to the
training process through shared memory (``/dev/shm``): a ``casia-b`` batch is
8 x 16 x 30 frames of 64 x 44 float32, about 43 MB, and up to
``num_workers * prefetch_factor`` of them are in flight, so a container needs
a large enough ``--shm-size``.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["BatchStream", "IterationDataset", "IterationSampler", "worker_init"]

T = TypeVar("T")


class IterationDataset(Dataset, Generic[T]):
    """Item ``i`` is ``make_batch(i)``, the batch of training iteration ``i``.

    ``make_batch`` must be picklable when workers are started with ``spawn``
    or ``forkserver`` (Linux forks by default, which copies it instead).
    """

    def __init__(self, make_batch: Callable[[int], T]) -> None:
        self.make_batch = make_batch

    def __getitem__(self, iteration: int) -> T:
        return self.make_batch(iteration)


class IterationSampler(Sampler[int]):
    """The iterations ``start, start + 1, ..., end - 1``; :meth:`restart` moves the range."""

    def __init__(self, start: int, end: int) -> None:
        self.restart(start, end)

    def restart(self, start: int, end: int) -> None:
        if not 0 <= start <= end:
            raise ValueError(f"need 0 <= start <= end, got start={start}, end={end}")
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))


def cat_for_transfer(tensors: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat(tensors, dim)``, written straight into shared memory inside a DataLoader worker.

    A worker's batch reaches the training process through shared memory, and a
    tensor made in ordinary memory is copied there when it is sent: for a
    43 MB ``casia-b`` batch that copy costs about as much CPU as the
    concatenation itself.  PyTorch's own ``default_collate``
    (torch/utils/data/_utils/collate.py) avoids it the same way, by allocating
    its output with ``_new_shared``.  Outside a worker this is plain ``torch.cat``.
    """
    first = tensors[0]
    new_shared = getattr(first.untyped_storage(), "_new_shared", None)
    if torch.utils.data.get_worker_info() is None or new_shared is None:
        return torch.cat(tensors, dim)
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    numel = 1
    for size in shape:
        numel *= size
    out = first.new_empty(0).set_(new_shared(numel * first.element_size())).view(shape)
    return torch.cat(tensors, dim, out=out)


def worker_init(worker_id: int) -> None:
    """One torch thread per worker: ``num_workers`` workers should use as many cores, not more.

    The batch itself takes no randomness from the worker (its seeds come from
    the iteration), so nothing else needs to be seeded here.
    """
    torch.set_num_threads(1)


class BatchStream(Generic[T]):
    """``stream(iteration)``: the batch of *iteration*, built ahead by worker processes.

    Meant for a training loop that asks for ``start, start + 1, ..., end - 1``
    in order; those come from the DataLoader, prefetched.  A request out of
    that order (an iteration skipped or repeated) restarts the sampler at the
    requested iteration, reusing the same (persistent) workers; one at or past
    ``end`` is built in this process.  Every answer equals ``make_batch(iteration)``.

    Args:
        make_batch: iteration -> batch, a pure function of the iteration.
        start, end: the iterations of the stage still to run.
        num_workers: worker processes; 0 builds every batch in this process,
            when asked, with no DataLoader at all.
        pin_memory: copy finished batches to page-locked memory (in a thread
            of this process), so that ``batch.to(cuda, non_blocking=True)``
            overlaps the copy with compute.  The batch type must then have a
            ``pin_memory()`` method.
        prefetch_factor: batches each worker builds ahead.

    Use it as a context manager, or call :meth:`close`: it stops the workers.
    """

    def __init__(self, make_batch: Callable[[int], T], start: int, end: int, *,
                 num_workers: int = 0, pin_memory: bool = False, prefetch_factor: int = 2) -> None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1, got {prefetch_factor}")
        self.make_batch = make_batch
        self.num_workers = num_workers
        end = max(start, end)           # a stage resumed at or past its end has nothing to load
        self.sampler = IterationSampler(start, end)
        self._next = start
        self._loader: DataLoader | None = None
        self._iterator: Iterator[T] | None = None
        if num_workers > 0 and end > start:
            # Each DataLoader iterator draws its workers' base seed from ``generator``, by default
            # the global torch RNG; a generator of its own leaves that state (checkpointed, and
            # used by the training step) as it would be without workers.
            self._loader = DataLoader(IterationDataset(make_batch), batch_size=None,
                                      sampler=self.sampler, num_workers=num_workers,
                                      pin_memory=pin_memory, prefetch_factor=prefetch_factor,
                                      persistent_workers=True, worker_init_fn=worker_init,
                                      generator=torch.Generator().manual_seed(0))

    def __call__(self, iteration: int) -> T:
        if self._loader is None or iteration >= self.sampler.end:
            return self.make_batch(iteration)
        if self._iterator is None or iteration != self._next:
            self.sampler.restart(iteration, self.sampler.end)
            self._iterator = iter(self._loader)     # persistent workers: the same processes
        self._next = iteration + 1
        return next(self._iterator)

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        iterator, self._iterator, self._loader = self._iterator, None, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:    # else the workers end when the iterator is collected
            shutdown()

    def __enter__(self) -> "BatchStream[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
