"""A plain QAT training loop (a user may write their own: the QatNet is an ordinary module):
Adam, cosine-decayed step, cross-entropy, BatchNorm frozen for the last epochs, and after each
epoch the accuracy of the integer-exact forward (the chip's) on held-out data."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .integer import integer_accuracy
from .steps import QatNet


@dataclass
class TrainConfig:
    """Hyper-parameters; ``freeze_bn`` is the number of final epochs with BatchNorm folded from
    its frozen running statistics."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3            # weights and BatchNorm
    quant_lr: float = 3e-2      # learned steps, offsets and clips, times each one's initial size
    freeze_bn: int = 2
    alpha_decay: float = 2e-4   # PACT's L2 on alpha
    seed: int = 0


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    accuracy: list[Optional[float]] = field(default_factory=list)  # integer-exact, per epoch


def _groups(net: QatNet, cfg: TrainConfig) -> list[dict]:
    """Weights at ``lr``; each learned step, offset or clip in its own group at ``quant_lr`` times
    its initial size (Adam's updates are absolute: a fixed rate would move an 8-bit step of 0.004
    as far as a 2-bit step of 0.5)."""
    groups, rest = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("scale", "beta", "alpha"):
            size = float(p.detach().abs().mean()) if leaf != "beta" else float(_sibling_scale(net, name))
            groups.append(dict(params=[p], lr=cfg.quant_lr * max(size, 1e-6),
                               weight_decay=cfg.alpha_decay if leaf == "alpha" else 0.0))
        else:
            rest.append(p)
    return [dict(params=rest, lr=cfg.lr)] + groups


def _sibling_scale(net: QatNet, beta_name: str) -> torch.Tensor:
    """LSQ+'s step beside its offset (the offset moves on the step's scale)."""
    return dict(net.named_parameters())[beta_name.rsplit(".", 1)[0] + ".scale"].detach().abs().mean()


def _initialise(net: QatNet, x: np.ndarray) -> None:
    """One forward pass in training mode sets the data-initialised quantizers (LSQ's step, LSQ+'s
    range, PACT's alpha, the input's range) before the optimiser sees them; BatchNorm's
    running statistics are kept."""
    saved = [(l.bn.running_mean.clone(), l.bn.running_var.clone()) for l in net.layers() if l.bn is not None]
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(x))
    for l, (m, v) in zip([l for l in net.layers() if l.bn is not None], saved):
        l.bn.running_mean.copy_(m), l.bn.running_var.copy_(v)


def fit(net: QatNet, x: np.ndarray, y: np.ndarray, x_val: Optional[np.ndarray] = None,
        y_val: Optional[np.ndarray] = None, config: Optional[TrainConfig] = None, progress: bool = True,
        desc: str = "qat") -> History:
    """Train ``net`` on ``x`` (N, ...) float32, ``y`` int64 labels; returns the loss and the
    integer-exact held-out accuracy of each epoch."""
    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    _initialise(net, x[:512])
    opt = torch.optim.Adam(_groups(net, cfg))
    base = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    hist = History()
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, disable=not progress, leave=False)
    step = 0
    for epoch in range(cfg.epochs):
        if epoch == cfg.epochs - cfg.freeze_bn:
            net.freeze_bn()
        net.train()
        order = rng.permutation(len(x))
        losses = []
        for b0 in range(0, len(x), cfg.batch_size):
            idx = order[b0:b0 + cfg.batch_size]
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
        hist.loss.append(float(np.mean(losses)))
        hist.accuracy.append(integer_accuracy(net, x_val, y_val) if x_val is not None else None)
        bar.set_postfix(loss=f"{hist.loss[-1]:.3f}", acc=f"{hist.accuracy[-1]:.3f}" if x_val is not None else "-")
    bar.close()
    net.eval()
    return hist
