"""Run by tests/test_distributed.py, alone or under torchrun: one backward pass, gradients to JSON.

In one process it splits the batch in two halves for the forward pass, so that
BatchNorm sees the same per-process statistics as the two-process run; the
losses are then computed on the whole batch.  Under torchrun it goes through
the trainer's real path: DDP, gather_across_ranks, loss scaled by world size.
"""
import json
import sys

import torch

from qgait_lab.losses import CrossEntropyLoss, TripletLoss
from qgait_lab.training.config import load_config
from qgait_lab.training.distributed import distributed_session, gather_across_ranks, wrap_for_training
from qgait_lab.experiments.pipeline import Experiment, build_float_model
from qgait_lab.ranks import rank, world_size
from qgait_lab.training.runtime import seed_everything

cfg = load_config("tiny-cpu", ["data.synth={n_ids: 8, n_train: 5, frames: 10, views: ['018', '090']}",
                               "data.batch_p=4", "data.batch_k=2", "data.frames=6",
                               "runtime.device=cpu", "runtime.progress=false"])
with distributed_session("cpu"):
    exp = Experiment(cfg)
    seed_everything(0)
    model = build_float_model(cfg, exp.num_classes).train()
    batch = exp.batches(0)
    if world_size() == 1:
        half = len(batch.labels) // 2
        outs = [model(batch.sils[:half]), model(batch.sils[half:])]
        emb = torch.cat([o["inference_feat"]["embeddings"] for o in outs])
        logits = torch.cat([o["training_feat"]["softmax"]["logits"] for o in outs])
        labels = batch.labels
    else:
        ddp = wrap_for_training(model, torch.device("cpu"))
        out = ddp(batch.sils)
        emb = gather_across_ranks(out["inference_feat"]["embeddings"])
        logits = gather_across_ranks(out["training_feat"]["softmax"]["logits"])
        labels = gather_across_ranks(batch.labels)
    loss = TripletLoss()(emb, labels)[0] + CrossEntropyLoss()(logits, labels)[0]
    (loss * world_size()).backward()
    if rank() == 0:
        grads = {n: p.grad.flatten()[:64].tolist() for n, p in model.named_parameters()}
        json.dump({"loss": loss.item(), "grads": grads}, open(sys.argv[1], "w"))
