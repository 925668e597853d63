"""A model's embeddings of a test split: :func:`eval_sequence` and :func:`extract_features`."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from .. import ranks
from ..models.contract import inference_embeddings
from ..models.inference import inference_copy


def eval_sequence(dataset, index: int, transform=None, max_frames: int | None = 720) -> torch.Tensor:
    """Sequence ``index`` of ``dataset`` as evaluation reads it: ``[frames, h, w]`` float32.

    All its frames in order (OpenGait's ``all_ordered``), at most ``max_frames``
    (its ``frames_all_limit``), through the test-time ``transform`` (without
    one, the stored 0..255 values are scaled to [0, 1]).
    """
    sils = torch.from_numpy(np.ascontiguousarray(dataset.load(index))).to(torch.float32)
    if max_frames is not None:
        sils = sils[:max_frames]
    return transform(sils, None) if transform is not None else sils / 255.0


def frame_batches(sequences: Iterable[torch.Tensor], batch_frames: int
                  ) -> Iterator[list[torch.Tensor]]:
    """``sequences`` (``[frames, ...]`` each) grouped, in order, into runs of at most ``batch_frames`` frames.

    A sequence longer than the budget is a batch by itself.
    """
    if batch_frames < 1:
        raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
    batch: list[torch.Tensor] = []
    total = 0
    for seq in sequences:
        if batch and total + len(seq) > batch_frames:
            yield batch
            batch, total = [], 0
        batch.append(seq)
        total += len(seq)
    if batch:
        yield batch


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset,
    transform=None,
    device: torch.device | str = "cpu",
    batch_frames: int = 1024,
    max_frames: int | None = 720,
    amp: bool = True,
    progress: bool = False,
    fold: bool = True,
) -> torch.Tensor:
    """Embeddings ``[n, c, p]`` of every sequence of ``dataset``, in dataset order.

    Sequences keep all their frames, in order (OpenGait's ``all_ordered``; at
    most ``max_frames`` of them, its ``frames_all_limit``) and are packed along
    the frame axis with their lengths in ``seqL``: consecutive sequences fill a
    batch up to ``batch_frames`` frames (a longer sequence is a batch of its
    own), so a batch costs about the same whatever the sequences' lengths, and
    variable-length sequences are batched without padding.

    Under ``torch.distributed`` each rank embeds every ``world_size``-th
    sequence and the shares are gathered, so every rank returns the full,
    ordered tensor.  ``progress`` shows a bar over this rank's sequences.
    ``fold`` embeds with :func:`~qgait_lab.models.inference.inference_copy`
    (quantized weights computed once, and in a float model BatchNorm folded):
    the same function, exactly for a quantized model and up to float rounding
    for a float one, and faster; ``model`` itself is left as it was.
    """
    device = torch.device(device)
    rank, world = ranks.rank(), ranks.world_size()
    mine = list(range(rank, len(dataset), world))
    was_training = model.training
    model.eval()
    net = inference_copy(model) if fold else model
    chunks: list[torch.Tensor] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(mine), desc="embedding test sequences", unit="seq", leave=False,
               disable=not progress, dynamic_ncols=True)
    try:
        loaded = (eval_sequence(dataset, index, transform, max_frames) for index in mine)
        for seqs in frame_batches(loaded, batch_frames):
            packed = torch.cat(seqs, 0)[None].to(device)
            seq_len = [len(s) for s in seqs]
            use_amp = amp and device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                out = net(packed, seq_len)
            chunks.append(inference_embeddings(out).float().cpu())
            bar.update(len(seqs))
    finally:
        bar.close()
        model.train(was_training)
    feats = torch.cat(chunks, 0) if chunks else torch.empty(0)
    if world == 1:
        return feats
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, (mine, feats))
    order = np.concatenate([np.asarray(idx, dtype=np.int64) for idx, _ in gathered])
    stacked = torch.cat([f for _, f in gathered if f.numel()], 0)
    out = torch.empty_like(stacked)
    out[torch.as_tensor(order)] = stacked
    return out
