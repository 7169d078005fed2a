"""Contrastive representation distillation (Tian et al., ICLR 2020)."""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.registry import DISTANCES
from ..base import Distance, EpsMixin

NEGATIVES = ('other_class', 'uniform')


@DISTANCES.register_module(name='crd')
class CRDDistance(EpsMixin, Distance):
    """CRD: NCE between student and teacher embeddings with a memory bank per side.

    Both features are flattened, embedded by their own linear layer (``in_dim -> feat_dim``,
    learnable: the teacher's embedding is trained too) and L2-normalised. For every sample
    ``i`` of the batch (its data-set index ``y_i``, the context's ``sample_idx``) the student
    embedding is scored against the teacher memory at ``[y_i, K negatives]`` and the teacher
    embedding against the student memory: ``exp(<v, m> / T) / Z``, with ``Z`` fixed at the
    first step to ``mean * num_data``. The loss of each side is the NCE loss of the official
    ``ContrastLoss`` (noise ``P_n = 1 / num_data``); the result is their sum. After scoring,
    the memory rows ``y`` move to ``normalize(momentum * m + (1 - momentum) * v)`` (training
    mode only). The memories, ``Z`` and the labels seen per row are buffers (checkpointed).

    Negatives: ``'other_class'`` (default, the official CIFAR script's ``exact`` mode) draws
    rows whose label differs from the sample's; labels are learned from ``gt_labels`` as
    rows are written, and rows not yet seen count as other-class. ``'uniform'`` draws any
    row (the memory's own sampler). A context ``contrast_idx`` of shape ``(N, K + 1)``
    (column 0 the positives) replaces the draw. Draws use the global torch RNG.

    The batch must carry its indices: ``PackClsInputs(meta_keys=('sample_idx',))`` in the
    train pipeline, and a distiller that passes ``sample_idx`` to its terms. Without
    ``num_data`` there is no memory: the batch is the contrast set and the loss is the
    symmetric InfoNCE of the two embeddings at temperature ``nce_t``.

    The memories are per process: under distributed training each rank updates the rows of
    its own batches only (the official code is single-process).
    """
    parametric = True
    formula = ('D(s, t) = NCE(e_s, M_t) + NCE(e_t, M_s), scores exp(<e, m> / T) / Z over the '
               'positive row y and K negatives; e = normalize(W f), M updated with momentum')
    source = 'CRD (Tian et al., ICLR 2020)'
    eps = 1e-7

    def __init__(self, in_dim: Optional[int] = None, feat_dim: int = 128,
                 num_data: Optional[int] = None, nce_k: int = 16384, nce_t: float = 0.07,
                 momentum: float = 0.5, negatives: str = 'other_class',
                 eps: Optional[float] = None):
        super().__init__(eps=eps)
        if negatives not in NEGATIVES:
            raise ValueError(f'crd negatives={negatives!r}; valid: {", ".join(NEGATIVES)}')
        if nce_t <= 0:
            raise ValueError(f'crd nce_t must be > 0, got {nce_t}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'crd momentum must be in [0, 1), got {momentum}')
        if num_data is not None and (int(num_data) < 2 or int(nce_k) < 1):
            raise ValueError(f'crd needs num_data >= 2 and nce_k >= 1, got num_data={num_data}, '
                             f'nce_k={nce_k}')
        self.in_dim = None if in_dim is None else int(in_dim)
        self.feat_dim = int(feat_dim) if in_dim is not None else None
        self.num_data = None if num_data is None else int(num_data)
        self.nce_k = int(nce_k)
        self.nce_t = float(nce_t)
        self.momentum = float(momentum)
        self.negatives = negatives
        if self.in_dim is not None:
            self.embed_s = nn.Linear(self.in_dim, self.feat_dim)
            self.embed_t = nn.Linear(self.in_dim, self.feat_dim)
        else:
            self.embed_s = self.embed_t = None
        if self.num_data is not None:
            if self.in_dim is None:
                raise ValueError('crd with a memory (num_data) needs in_dim, the width of the '
                                 'flattened features, to size its embeddings')
            stdv = 1.0 / math.sqrt(self.feat_dim / 3.0)
            for name in ('memory_s', 'memory_t'):
                self.register_buffer(
                    name, torch.rand(self.num_data, self.feat_dim).mul_(2 * stdv).add_(-stdv))
            self.register_buffer('z_s', torch.tensor(-1.0))
            self.register_buffer('z_t', torch.tensor(-1.0))
            self.register_buffer('row_labels', torch.full((self.num_data, ), -1,
                                                          dtype=torch.long))

    def embed(self, x: torch.Tensor, layer: Optional[nn.Linear]) -> torch.Tensor:
        x = x.flatten(1)
        if layer is not None:
            if x.shape[1] != self.in_dim:
                raise ValueError(f'crd in_dim={self.in_dim} but the flattened features have '
                                 f'{x.shape[1]} values per sample; set in_dim={x.shape[1]}')
            x = layer(x)
        return F.normalize(x, p=2.0, dim=1)

    def distance(self, s, t, **context):
        v_s = self.embed(s, self.embed_s)
        v_t = self.embed(t, self.embed_t)
        if self.num_data is None:
            logits = v_s @ v_t.t() / self.nce_t
            target = torch.arange(logits.shape[0], device=logits.device)
            return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
        rows = self._rows(context.get('sample_idx'), v_s.shape[0], v_s.device)
        idx = self._contrast_idx(rows, context, v_s.device)
        n, k1 = idx.shape
        mem_t = self.memory_t.index_select(0, idx.view(-1)).view(n, k1, -1).to(v_s.dtype)
        mem_s = self.memory_s.index_select(0, idx.view(-1)).view(n, k1, -1).to(v_s.dtype)
        out_s = torch.exp(torch.bmm(mem_t, v_s.unsqueeze(2)).squeeze(2) / self.nce_t)
        out_t = torch.exp(torch.bmm(mem_s, v_t.unsqueeze(2)).squeeze(2) / self.nce_t)
        if self.z_s < 0:  # fixed once, from the first batch, as the official memory does
            self.z_s.fill_(float(out_s.detach().mean()) * self.num_data)
        if self.z_t < 0:
            self.z_t.fill_(float(out_t.detach().mean()) * self.num_data)
        loss = self.nce_loss(out_s / self.z_s.to(out_s.dtype)) + \
            self.nce_loss(out_t / self.z_t.to(out_t.dtype))
        if self.training:
            self._update(rows, v_s.detach(), v_t.detach(), context.get('gt_labels'))
        return loss

    def nce_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The official ``ContrastLoss`` on ``(N, K + 1)`` scores, column 0 positive."""
        m = x.shape[1] - 1
        noise = m / float(self.num_data)
        log_pos = torch.log(x[:, 0] / (x[:, 0] + noise + self.eps))
        log_neg = torch.log(noise / (x[:, 1:] + noise + self.eps))
        return -(log_pos.sum() + log_neg.sum()) / x.shape[0]

    def _rows(self, sample_idx, n: int, device) -> torch.Tensor:
        if sample_idx is None:
            raise ValueError(
                "distance 'crd' with a memory (num_data) needs each batch's data-set indices "
                "(context key sample_idx): add dict(type='PackClsInputs', meta_keys="
                "('sample_idx',)) to the train pipeline, and train with a distiller that "
                "passes data_samples['sample_idx'] to its terms")
        rows = torch.as_tensor(sample_idx, device=device).long().view(-1)
        if rows.numel() != n:
            raise ValueError(f'crd: {rows.numel()} sample indices for a batch of {n}')
        if rows.min() < 0 or rows.max() >= self.num_data:
            raise ValueError(f'crd: sample index {int(rows.max())} is outside the memory of '
                             f'num_data={self.num_data} rows; set num_data to the size of the '
                             f'train set')
        return rows

    def _contrast_idx(self, rows: torch.Tensor, context: dict, device) -> torch.Tensor:
        given = context.get('contrast_idx')
        if given is not None:
            idx = torch.as_tensor(given, device=device).long()
            if idx.dim() != 2 or idx.shape[0] != rows.numel() or idx.shape[1] < 2:
                raise ValueError(f'crd contrast_idx must be (N, K + 1) with N={rows.numel()}, '
                                 f'got {tuple(idx.shape)}')
            return idx
        idx = torch.randint(0, self.num_data, (rows.numel(), self.nce_k + 1), device=device)
        idx[:, 0] = rows
        labels = context.get('gt_labels')
        if self.negatives == 'other_class' and labels is not None:
            labels = torch.as_tensor(labels, device=device).long().view(-1, 1)
            for _ in range(8):  # redraw negatives known to share the sample's class
                same = self.row_labels[idx[:, 1:]] == labels
                if not bool(same.any()):
                    break
                idx[:, 1:][same] = torch.randint(0, self.num_data, (int(same.sum()), ),
                                                 device=device)
        return idx

    @torch.no_grad()
    def _update(self, rows, v_s, v_t, labels) -> None:
        for memory, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            new = memory.index_select(0, rows) * self.momentum + v.to(memory.dtype) * (
                1.0 - self.momentum)
            memory.index_copy_(0, rows, F.normalize(new, p=2.0, dim=1))
        if labels is not None:
            self.row_labels.index_copy_(0, rows, torch.as_tensor(labels).to(rows.device).long())
