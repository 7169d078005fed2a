"""KDEP's parameter-free alignment and transformation modules (He et al., CVPR 2022).

KDEP matches the student's pooled features ``(N, D_s)`` to a teacher's ``(N, D_t)``
without learnable parameters: the teacher side is aligned to ``D_s`` (channel selection,
interpolation or, best, an SVD projection), then rescaled (SN, SM or PTS) so that a few
high-variance channels do not dominate the L2 loss. In KDEP's official code all of this
happens to the *teacher* features only (inside the teacher, under ``no_grad``): the loss is
``mse(f_s, PTS((f_t - mu) V_k))`` with ``mu`` the mean teacher feature and ``V_k`` the top
right singular vectors of the centred teacher features; the student's features enter
the loss as they are. The transforms here do the same by default (``apply_to='teacher'``
for ``sn``, ``sm``, ``pts``; ``'both'`` applies them to the student tensor as well).

**Student/teacher convention.** A distill term applies each transform to the (student,
teacher) pair with :meth:`~kdzoo.kd.KnowledgeTransform.pair`. The dimension-aligning
transforms only change tensors whose channel dim (dim 1) differs from the target
``out_dim``; a tensor that already has ``out_dim`` channels (the student's) passes through
unchanged. ``out_dim=None`` means "the channel dim of the student tensor of the pair" (for
a single tensor, its own: it passes through). All of them accept ``(N, D)`` vectors and
``(N, C, H, W)`` maps (aligned along C at every position).
"""
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import EpsMixin, KnowledgeTransform
from ._common import LazyBuffersMixin, channel_view, reduce_dims_except

Features = Union[torch.Tensor, Iterable[torch.Tensor]]


def _iter_features(features: Features):
    if isinstance(features, torch.Tensor):
        yield features
    else:
        yield from features


def _channels_last_2d(x: torch.Tensor) -> torch.Tensor:
    """(N, C) or (N, C, H, W) -> (M, C) with one row per sample (and position)."""
    if x.dim() == 2:
        return x
    return x.movedim(1, -1).reshape(-1, x.shape[1])


class _ChannelAlign(KnowledgeTransform):
    family = 'alignment'
    ranks = (2, 4)

    def __init__(self, out_dim: Optional[int] = None):
        super().__init__()
        if out_dim is not None and out_dim <= 0:
            raise ValueError(f'out_dim must be > 0, got {out_dim}')
        self.out_dim = out_dim

    def align(self, x: torch.Tensor, out: int) -> torch.Tensor:
        """``x`` with ``out`` channels (unchanged if it has them already)."""
        raise NotImplementedError  # abstract

    def transform(self, x):
        return self.align(x, int(x.shape[1]) if self.out_dim is None else self.out_dim)

    def transform_pair(self, s, t):
        out = int(s.shape[1]) if self.out_dim is None else self.out_dim  # the student's
        return self.align(s, out), self.align(t, out)


@KD_TRANSFORMS.register_module(name='svd')
class SVDAlign(LazyBuffersMixin, _ChannelAlign):
    """Project centred teacher features onto their top-``out_dim`` right singular vectors.

    As in KDEP's official code (PCA of the teacher features): ``mean`` (buffer, ``(D_t,)``)
    is the mean teacher feature and ``basis`` (buffer, ``(D_t, D_s)``) holds the top right
    singular vectors of the centred teacher feature matrix ``X - mean`` (``X (M, D_t)``),
    i.e. the top eigenvectors of ``(X - mean)^T (X - mean)``, each with its
    largest-magnitude entry made positive (singular vectors have no sign of their own);
    teacher tensors become ``(x - mean) @ basis``. ``center=False`` keeps ``mean`` at 0 (an
    uncentred projection). ``fitted`` (buffer) tells whether the basis was computed.
    :meth:`fit` computes them from a tensor or an iterable of tensors (e.g. over a data
    loader). If not fitted, the first tensor whose dim differs from the target (the
    teacher's of the first pair) is used to fit it.

    After fitting, tensors with ``D_t`` channels are projected and tensors
    with ``D_s`` channels are returned unchanged. When ``D_t == D_s`` the projection
    (centring, then a rotation) is applied to both tensors; it then only happens after an explicit :meth:`fit`
    (before it, equal-dim tensors pass through).

    Args:
        out_dim: ``D_s``; ``None``: the channel dim of the pair's student tensor.
        in_dim: ``D_t`` if known (pre-sizes the buffers; otherwise sized when fitted or
            when a checkpoint is loaded).
        center: subtract the mean teacher feature before the SVD and the projection
            (KDEP's code; default).
    """
    stateful = True
    formula = ('T(f_t) = (f_t - mu) V_k, mu = mean teacher feature, V_k = top-D_s right '
               'singular vectors of the centred teacher features')
    shapes = '(N,D_t) -> (N,D_s); (N,D_t,H,W) -> (N,D_s,H,W); D_s tensors unchanged'
    source = 'KDEP (He et al., CVPR 2022): SVD alignment'
    _lazy_buffers = ('basis', 'mean')

    def __init__(self, out_dim: Optional[int] = None, in_dim: Optional[int] = None,
                 center: bool = True):
        super().__init__(out_dim)
        self.center = bool(center)
        self.register_buffer('basis', torch.zeros(in_dim or 0, out_dim or 0))
        self.register_buffer('mean', torch.zeros(in_dim or 0))
        self.register_buffer('fitted', torch.tensor(False))

    @torch.no_grad()
    def fit(self, features: Features, out_dim: Optional[int] = None) -> 'SVDAlign':
        """Fit the basis on teacher features: a tensor or an iterable of tensors.

        ``out_dim`` overrides the constructor's; if neither is set all ``D_t`` directions
        are kept, i.e. a rotation (after the centring). Under distributed training call it
        before training (on the same data on every rank): a basis fitted inside the first
        forward comes from each rank's own batch.
        """
        if out_dim is not None:
            self.out_dim = int(out_dim)
        gram = total = None
        count = 0
        for x in _iter_features(features):
            self.check_rank(x)
            flat = _channels_last_2d(x.detach()).double()
            part, part_sum = flat.t() @ flat, flat.sum(0)
            gram = part if gram is None else gram + part
            total = part_sum if total is None else total + part_sum
            count += flat.shape[0]
        if gram is None:
            raise ValueError('svd.fit got no features')
        in_dim = gram.shape[0]
        mean = total / count if self.center else torch.zeros_like(total)
        gram = gram - count * torch.outer(mean, mean)  # (X - mean)^T (X - mean)
        k = self.out_dim if self.out_dim is not None else in_dim
        if k > in_dim:
            raise ValueError(f'svd cannot project {in_dim} teacher channels to {k} > {in_dim}')
        _, vecs = torch.linalg.eigh(gram)           # ascending eigenvalues
        basis = vecs[:, -k:].flip(-1) if k > 0 else vecs[:, :0]
        idx = basis.abs().argmax(dim=0)
        signs = torch.sign(basis[idx, torch.arange(k, device=basis.device)])
        basis = basis * torch.where(signs == 0, torch.ones_like(signs), signs)
        self.out_dim = k
        self._resize_buffer('basis', (in_dim, k)).copy_(basis.to(self.basis.dtype))
        self._resize_buffer('mean', (in_dim, )).copy_(mean.to(self.mean.dtype))
        self.fitted.fill_(True)
        return self

    def align(self, x, out):
        c = x.shape[1]
        if not bool(self.fitted):
            if c == out:
                return x
            self.fit(x, out_dim=out)
        in_dim, out_dim = self.basis.shape
        if c == in_dim:
            basis = self.basis.to(x.dtype)
            x = x - channel_view(self.mean.to(x.dtype), x)
            if x.dim() == 2:
                return x @ basis
            return torch.einsum('nchw,cd->ndhw', x, basis)
        if c == out_dim:
            return x
        raise ValueError(f'svd was fitted for {in_dim} -> {out_dim} channels, got a tensor '
                         f'of shape {tuple(x.shape)}')


@KD_TRANSFORMS.register_module(name='channel_select')
class ChannelSelect(_ChannelAlign):
    """Keep ``out_dim`` teacher channels: the first ones, or the given ``indices``."""
    formula = 'T(f_t) = f_t[:, indices] (default: the first D_s channels)'
    shapes = '(N,D_t[,H,W]) -> (N,D_s[,H,W]); D_s tensors unchanged'
    source = 'KDEP (He et al., CVPR 2022): channel selection'

    def __init__(self, out_dim: Optional[int] = None, indices: Optional[Sequence[int]] = None):
        if indices is not None:
            indices = [int(i) for i in indices]
            if out_dim is not None and out_dim != len(indices):
                raise ValueError(f'channel_select: out_dim={out_dim} but {len(indices)} '
                                 'indices given')
            out_dim = len(indices)
        super().__init__(out_dim)
        self.indices = indices

    def align(self, x, out):
        c = x.shape[1]
        if c == out:
            return x
        if self.indices is None:
            if c < out:
                raise ValueError(f'channel_select cannot select {out} of {c} channels')
            return x[:, :out]
        if max(self.indices) >= c:
            raise ValueError(f'channel_select index {max(self.indices)} out of range for '
                             f'{c} channels')
        return x.index_select(1, torch.as_tensor(self.indices, device=x.device))


@KD_TRANSFORMS.register_module(name='interp')
class ChannelInterp(_ChannelAlign):
    """Interpolation along the channel dim to ``out_dim``.

    ``mode='nearest'`` (default) is KDEP's code, ``F.interpolate(f.view(N, 1, D_t),
    size=D_s)`` (PyTorch's default mode): output channel ``j`` is input channel
    ``floor(j * D_t / D_s)``. ``mode='linear'`` interpolates linearly (align_corners=True).
    """
    formula = 'T(f_t) = interpolate(f_t along C, D_t -> D_s), nearest: f_t[:, floor(j D_t / D_s)]'
    shapes = '(N,D_t[,H,W]) -> (N,D_s[,H,W]); D_s tensors unchanged'
    source = 'KDEP (He et al., CVPR 2022): interpolation'

    def __init__(self, out_dim: Optional[int] = None, mode: str = 'nearest'):
        super().__init__(out_dim)
        if mode not in ('nearest', 'linear'):
            raise ValueError(f"interp mode must be 'nearest' or 'linear', got {mode!r}")
        self.mode = mode

    def align(self, x, out):
        c = x.shape[1]
        if c == out:
            return x
        rows = _channels_last_2d(x).unsqueeze(1)  # (M, 1, C)
        if self.mode == 'linear':
            res = F.interpolate(rows, size=out, mode='linear', align_corners=True)
        else:
            res = F.interpolate(rows, size=out, mode='nearest')
        res = res.squeeze(1)
        if x.dim() == 2:
            return res
        n, _, h, w = x.shape
        return res.view(n, h, w, out).permute(0, 3, 1, 2)


def _check_apply_to(apply_to: str) -> str:
    if apply_to not in ('teacher', 'both'):
        raise ValueError(f"apply_to must be 'teacher' or 'both', got {apply_to!r}")
    return apply_to


class _RunningChannelStats(LazyBuffersMixin, EpsMixin, KnowledgeTransform):
    """Per-channel variance kept in buffers (``running_var``, ``num_batches_tracked``).

    Statistics are computed over every dim but the channel dim (1). :meth:`pair` rescales
    the teacher tensor (KDEP: the target is rescaled, the student's features are matched
    to it as they are); with ``apply_to='both'`` the student tensor is rescaled by the same
    statistics too. In training mode the statistics are then updated from the teacher
    tensor (``update_from='teacher'``, default); ``'both'`` updates after each of the two
    tensors (and after a single tensor given to ``forward``, which otherwise updates
    nothing). Before any statistics exist, a tensor is scaled by its own batch statistics
    (and the teacher's are stored). :meth:`fit` sets the statistics from data. In eval mode
    the stored statistics are used unchanged. ``forward(x)`` rescales ``x``.

    Args:
        momentum: running-average momentum; ``None``: cumulative average.
        eps: added to the variance.
        num_channels: pre-sizes the buffers (otherwise sized at the first call / on load).
        update_from: ``'teacher'`` or ``'both'``.
        apply_to: ``'teacher'`` (KDEP) or ``'both'``.
    """
    family = 'alignment'
    ranks = (2, 4)
    stateful = True
    _lazy_buffers = ('running_var', )
    eps = 1e-5

    def __init__(self, momentum: Optional[float] = 0.1, eps: Optional[float] = None,
                 num_channels: Optional[int] = None, update_from: str = 'teacher',
                 apply_to: str = 'teacher'):
        super().__init__(eps=eps)
        if update_from not in ('teacher', 'both'):
            raise ValueError(f"update_from must be 'teacher' or 'both', got {update_from!r}")
        self.momentum = momentum
        self.update_from = update_from
        self.apply_to = _check_apply_to(apply_to)
        self.register_buffer('running_var', torch.ones(num_channels or 0))
        self.register_buffer('num_batches_tracked', torch.tensor(0, dtype=torch.long))

    @staticmethod
    def batch_var(x: torch.Tensor) -> torch.Tensor:
        return x.detach().var(dim=reduce_dims_except(x, 1), unbiased=False)

    def _store(self, var: torch.Tensor) -> None:
        self._resize_buffer('running_var', var.shape).copy_(var)
        self.num_batches_tracked.fill_(1)

    @torch.no_grad()
    def fit(self, features: Features) -> '_RunningChannelStats':
        """Set the statistics from data: a tensor or an iterable of tensors."""
        total = sq = None
        count = 0
        for x in _iter_features(features):
            self.check_rank(x)
            flat = _channels_last_2d(x.detach()).double()
            s, q = flat.sum(0), flat.pow(2).sum(0)
            total = s if total is None else total + s
            sq = q if sq is None else sq + q
            count += flat.shape[0]
        if not count:
            raise ValueError(f'{type(self).__name__}.fit got no features')
        mean = total / count
        self._store((sq / count - mean.pow(2)).clamp_min(0).to(self.running_var.dtype))
        return self

    def channel_var(self, x: torch.Tensor, update: bool = False) -> torch.Tensor:
        """The per-channel variance used to transform ``x``; then, in training mode and
        if ``update``, the statistics are updated from ``x``."""
        tracked = int(self.num_batches_tracked) > 0
        if tracked and self.running_var.numel() != x.shape[1]:
            raise ValueError(f'{type(self).__name__} holds statistics of '
                             f'{self.running_var.numel()} channels, got a tensor of shape '
                             f'{tuple(x.shape)}')
        if not self.training:
            return self.running_var if tracked else self.batch_var(x)
        if not tracked:
            var = self.batch_var(x)
            if update:
                self._store(var)
            return var
        var = self.running_var.clone()
        if update:
            count = int(self.num_batches_tracked) + 1
            momentum = 1.0 / count if self.momentum is None else self.momentum
            self.running_var.mul_(1 - momentum).add_(momentum * self.batch_var(x))
            self.num_batches_tracked.fill_(count)
        return var

    def rescale(self, x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """``x`` scaled by the per-channel variance ``var``."""
        raise NotImplementedError  # abstract

    def transform(self, x):
        return self.rescale(x, self.channel_var(x, update=self.update_from == 'both'))

    def transform_pair(self, s, t):
        if self.apply_to == 'both':
            s = self.rescale(s, self.channel_var(s, update=self.update_from == 'both'))
        elif self.update_from == 'both':
            self.channel_var(s, update=True)
        return s, self.rescale(t, self.channel_var(t, update=True))


@KD_TRANSFORMS.register_module(name='sn')
class StdNormalize(_RunningChannelStats):
    """KDEP's SN: divide each channel by its standard deviation (running statistics).

    Applied to the teacher tensor of a pair (``apply_to='teacher'``, KDEP); after the
    centred ``svd`` projection this standardises the target channels.
    """
    formula = ('T(f_t) = f_t / sqrt(var_c + eps), var_c = running per-channel variance of '
               'the teacher; student unchanged (apply_to=teacher)')
    source = 'KDEP (He et al., CVPR 2022): SN'

    def rescale(self, x, var):
        var = var.to(x.dtype)
        return x / channel_view(torch.sqrt(var + self.eps), x)


@KD_TRANSFORMS.register_module(name='sm')
class StdMatch(_RunningChannelStats):
    """KDEP's SM: rescale each channel so its std equals the pre-alignment max std.

    The target std is ``target_std`` if given, else the ``target`` buffer set by
    ``fit(features, pre_alignment=...)`` (the max channel std of the features before the
    SVD alignment: the card's default), else the max running channel std of the
    transform's own input. :func:`fit_chain` (run by
    :class:`~kdzoo.engine.kdep_hooks.KDEPFitHook` before training) fits it with the
    features that enter the nearest alignment transform before it in the chain, so in a
    ``['svd', 'sm']`` chain the target is the pre-SVD max std. Applied to the teacher
    tensor of a pair (``apply_to='teacher'``, KDEP).
    """
    formula = ('T(f_t) = f_t * s_max / sqrt(var_c + eps), s_max = max channel std before '
               'alignment; student unchanged (apply_to=teacher)')
    source = 'KDEP (He et al., CVPR 2022): SM'

    def __init__(self, target_std: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.target_std = target_std
        self.register_buffer('target', torch.tensor(0.0))

    @torch.no_grad()
    def fit(self, features: Features, pre_alignment: Optional[Features] = None) -> 'StdMatch':
        """Fit the channel statistics; ``pre_alignment`` features set the target std."""
        super().fit(features)
        if pre_alignment is not None:
            ref = _RunningChannelStats(momentum=None).fit(pre_alignment)
            self.target.fill_(float(ref.running_var.max().sqrt()))
        return self

    def rescale(self, x, var):
        var = var.to(x.dtype)
        if self.target_std is not None:
            target = torch.as_tensor(float(self.target_std), dtype=x.dtype, device=x.device)
        elif float(self.target) > 0:
            target = self.target.to(x.dtype)
        else:
            target = var.max().sqrt()
        return x * channel_view(target / torch.sqrt(var + self.eps), x)


@KD_TRANSFORMS.register_module(name='pts')
class PowerTemperatureScaling(EpsMixin, KnowledgeTransform):
    """KDEP's power temperature scaling, global and non-decreasing.

    ``PTS(f) = sign(f) * |f / T|^(1/n)``, as in KDEP's code
    (``torch.sign(feat) * torch.pow(torch.abs(feat / T), 1 / n)``), applied to the teacher
    tensor of a pair (``apply_to='teacher'``, KDEP: the student's features are matched to
    the transformed teacher features); ``apply_to='both'`` transforms the student tensor
    too. ``forward(x)`` transforms ``x``. ``T`` and ``n`` are not stated in the method card;
    the defaults ``T=0.1, n=3`` are the values active in KDEP's released code (it also lists
    ``T=0.03, n=3`` and ``T=0.2, n=2``). ``|f / T|`` is clamped below at ``eps`` inside the
    power so the gradient at ``f = 0`` is 0, not NaN.
    """
    family = 'alignment'
    ranks = (2, 3, 4)
    formula = ('T(f_t) = sign(f_t) * |f_t / T|^(1/n), T = 0.1, n = 3; student unchanged '
               '(apply_to=teacher)')
    source = 'KDEP (He et al., CVPR 2022): PTS'

    def __init__(self, T: float = 0.1, n: float = 3.0,  # noqa: N803 (paper's symbols)
                 eps: Optional[float] = None, apply_to: str = 'teacher'):
        super().__init__(eps=eps)
        if T <= 0 or n <= 0:
            raise ValueError(f'pts needs T > 0 and n > 0, got T={T}, n={n}')
        self.T = float(T)
        self.n = float(n)
        self.apply_to = _check_apply_to(apply_to)

    def transform(self, x):
        return torch.sign(x) * (x / self.T).abs().clamp_min(self.eps).pow(1.0 / self.n)

    def transform_pair(self, s, t):
        return (self.transform(s) if self.apply_to == 'both' else s), self.transform(t)


# --- fitting a whole chain before training -------------------------------------------------

def is_fitted(transform: KnowledgeTransform) -> bool:
    """Whether a stateful KDEP transform holds fitted state (``True`` for the others)."""
    if isinstance(transform, SVDAlign):
        return bool(transform.fitted)
    if isinstance(transform, StdMatch):
        return int(transform.num_batches_tracked) > 0 and (
            transform.target_std is not None or float(transform.target) > 0)
    if isinstance(transform, _RunningChannelStats):
        return int(transform.num_batches_tracked) > 0
    return True


def needs_fit(transforms: Sequence[KnowledgeTransform]) -> bool:
    """Whether a chain has a KDEP transform (``svd``, ``sn``, ``sm``) still to fit."""
    return any(not is_fitted(t) for t in transforms)


@torch.no_grad()
def fit_chain(transforms: Sequence[KnowledgeTransform], student: torch.Tensor,
              teacher: torch.Tensor) -> List[str]:
    """Fit the KDEP transforms of a chain, in order, on a pass of data.

    ``student`` / ``teacher`` hold the features of the same samples (the term's inputs,
    already divided by its ``tau``), stacked along dim 0. Each transform is fitted on what
    reaches it: ``svd`` (when the teacher's channel dim differs from its target) on the
    teacher features, ``sn`` on the teacher features after the transforms before it, ``sm``
    likewise, with its target std taken from the features *entering* the nearest
    alignment transform (``svd``, ``channel_select``, ``interp``) before it: the pre-SVD
    max channel std of KDEP's SM (its own input when no alignment precedes it). The pair
    is then passed through the transform in eval mode (stochastic ones are the identity,
    statistics are not updated) to reach the next one. Transforms that already hold
    fitted state (a resumed run) are kept. Returns one line per fitted transform.
    """
    lines = []
    pre_alignment = None
    s, t = student, teacher
    for i, transform in enumerate(transforms):
        name = f'transforms[{i}] {type(transform).__name__}'
        if isinstance(transform, _ChannelAlign):
            pre_alignment = t
        if not is_fitted(transform):
            if isinstance(transform, SVDAlign):
                out = transform.out_dim if transform.out_dim is not None else int(s.shape[1])
                if int(t.shape[1]) != out:
                    transform.fit(t, out_dim=out)
                    lines.append(f'{name}: basis {t.shape[1]} -> {out} channels from '
                                 f'{_rows(t)} teacher vectors')
            elif isinstance(transform, StdMatch):
                ref = t if pre_alignment is None else pre_alignment
                transform.fit(t, pre_alignment=ref)
                lines.append(f'{name}: channel std from {_rows(t)} teacher vectors, target '
                             f'std {float(transform.target):.4g} (max channel std '
                             f'{"before the alignment" if pre_alignment is not None else "of its input"})')
            elif isinstance(transform, _RunningChannelStats):
                transform.fit(t)
                std = transform.running_var.sqrt()
                lines.append(f'{name}: channel std from {_rows(t)} teacher vectors '
                             f'(max/min {float(std.max() / std.min().clamp_min(1e-12)):.3g})')
        was_training = transform.training
        transform.eval()
        try:
            s, t = transform.pair(s, t)
        finally:
            transform.train(was_training)
    return lines


def _rows(x: torch.Tensor) -> int:
    return int(_channels_last_2d(x).shape[0])


def fitted_state(transforms: Sequence[KnowledgeTransform]) -> List[Tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of every buffer of the stateful transforms of a chain (what a
    distributed run broadcasts from rank 0 after fitting)."""
    state = []
    for i, transform in enumerate(transforms):
        if getattr(transform, 'stateful', False):
            state.extend((f'{i}.{name}', buf) for name, buf in transform.named_buffers())
    return state


# --- teacher selection ---------------------------------------------------------------------

@torch.no_grad()
def feature_compactness(features: Features, k: Optional[int] = None) -> dict:
    """How compact a teacher's penultimate feature distribution is (KDEP: compact = a worse
    KDEP teacher).

    ``features``: ``(M, D)`` pooled features (or an iterable of batches). With the
    singular values ``s_1 >= ... >= s_D`` of the *centred* feature matrix:

    * ``effective_rank = exp(H(p))``, ``p_i = s_i / sum_j s_j``, ``H`` the Shannon entropy
      (Roy & Vetterli, 2007): how many directions carry the features' spread; ``D`` when
      all are equal, 1 when one direction holds everything. It is the ranking key: it does
      not change with the features' scale or a rotation, so teachers of different
      architectures and feature magnitudes compare.
    * ``compactness = 1 - effective_rank / D`` (0: spread over every dim, near 1: compact).
    * ``top1_share = s_1^2 / sum_j s_j^2``: the variance share of the first direction.
    * with ``k`` (the student's dim): ``std_ratio = s_1 / s_k``, the max/min channel std
      after KDEP's SVD projection onto ``k`` directions (the spread SN / SM / PTS correct),
      and ``topk_share``, the variance share the projection keeps.
    """
    x = torch.cat([_channels_last_2d(f.detach()).double() for f in _iter_features(features)])
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f'feature_compactness needs (M, D) features with M >= 2, got '
                         f'{tuple(x.shape)}')
    dim = int(x.shape[1])
    s = torch.linalg.svdvals(x - x.mean(0))
    total = s.sum()
    if float(total) == 0.0:
        raise ValueError('feature_compactness: the features are constant (no spread)')
    p = s / total
    p = p[p > 0]
    erank = float(torch.exp(-(p * p.log()).sum()))
    energy = s.pow(2)
    out = dict(dim=dim, samples=int(x.shape[0]), effective_rank=erank,
               compactness=1.0 - erank / dim, top1_share=float(energy[0] / energy.sum()))
    if k is not None:
        if not 1 <= int(k) <= len(s):
            raise ValueError(f'feature_compactness: k={k} must be in [1, {len(s)}]')
        k = int(k)
        out['k'] = k
        out['std_ratio'] = float(s[0] / s[k - 1]) if float(s[k - 1]) > 0 else float('inf')
        out['topk_share'] = float(energy[:k].sum() / energy.sum())
    return out
