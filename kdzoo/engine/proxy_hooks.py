"""Hooks for proxy training (the short runs that score search candidates).

- :class:`LossSuppressionHook` (UniADS' loss-suppression protocol): stops a run whose
  training loss is non-finite, explodes, is too high or does not decrease. It writes
  ``WORK_DIR/suppression.json`` and raises :class:`LossSuppressed`, so the process exits
  non-zero and the search tells a *suppressed* candidate (the json file exists) from a
  crashed one (it does not).
- :class:`EarlyStopOnGoodEnoughHook` (Auto-KD's proxy "good enough"): ends training when
  the validation metric reaches a threshold or stops improving; the run's last validation
  (the intermediate model) is the trial's reward. It writes ``WORK_DIR/early_stop.json``.

``search.proxy`` turns them on for every trial of a search::

    proxy=dict(suppression=dict(window=20, explode_factor=10.0, patience=200),
               good_enough=dict(metric='accuracy/top1', threshold=90.0, patience=2))
"""
import math
import os.path as osp
import uuid
from collections import deque
from typing import Optional

from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from kdzoo.registry import HOOKS
from kdzoo.utils.files import read_json, write_json

#: File names written into the work dir (read by :class:`kdzoo.search.TrialRunner`).
SUPPRESSION_FILE = 'suppression.json'
EARLY_STOP_FILE = 'early_stop.json'
#: The validations EarlyStopOnGoodEnoughHook has counted (read back when a run resumes).
EARLY_STOP_STATE_FILE = 'early_stop_state.json'


def _plain(value):
    """Non-finite floats as strings (``'nan'``), so the file is strict json."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_json(path: str, data: dict) -> None:
    write_json(path, _plain(data))


def _as_float(value) -> float:
    if hasattr(value, 'detach'):
        value = value.detach().float().mean().item()
    return float(value)


class LossSuppressed(RuntimeError):
    """Raised by :class:`LossSuppressionHook` to end a run whose loss was suppressed."""


@HOOKS.register_module()
class LossSuppressionHook(Hook):
    """Stop a run whose training loss shows it will not train (UniADS' loss suppression).

    The loss ``key`` of the model's outputs (the message hub's ``train/<key>`` when the
    outputs lack it) is checked after every training iteration; with several processes the
    value is first averaged over them, so all ranks decide alike. Reasons, in this order:

    - ``non-finite``: the loss (or any output whose name starts with ``loss``) is NaN / inf;
    - ``too high``: the loss exceeds ``max_loss`` (``None``: no limit);
    - ``exploded``: once the first ``window`` iterations are seen, a loss above
      ``explode_factor`` x their mean (the *first-window mean*; skipped when it is <= 0);
    - ``no decrease``: from iteration ``patience`` on, the mean of the last ``window``
      losses is >= ``(1 - min_decrease)`` x the first-window mean (``patience=None``: off).

    On a stop it writes ``WORK_DIR/suppression.json`` (reason, iteration, epoch, the loss,
    both window means, the recent losses, the thresholds) and raises :class:`LossSuppressed`.
    The first-window mean and the iteration count are saved in checkpoints, so a resumed
    run keeps comparing with the first window of the original run.
    """
    priority = 'NORMAL'  # after RuntimeInfoHook (VERY_HIGH), before LoggerHook

    def __init__(self, key: str = 'loss', window: int = 20, explode_factor: float = 10.0,
                 patience: Optional[int] = 200, min_decrease: float = 0.0,
                 max_loss: Optional[float] = None, check_finite: bool = True):
        if window < 1:
            raise ValueError(f'LossSuppressionHook: window must be >= 1, got {window}')
        if explode_factor is not None and explode_factor <= 1:
            raise ValueError(f'LossSuppressionHook: explode_factor must be > 1 (or None), '
                             f'got {explode_factor}')
        if patience is not None and patience < window:
            raise ValueError(f'LossSuppressionHook: patience ({patience}) must be >= window '
                             f'({window}) or None')
        self.key = key
        self.window = int(window)
        self.explode_factor = explode_factor
        self.patience = patience
        self.min_decrease = float(min_decrease)
        self.max_loss = max_loss
        self.check_finite = check_finite
        self.seen = 0                    # iterations checked (across resumes)
        self.first: list = []            # the first `window` losses
        self.first_mean: Optional[float] = None
        self.recent: deque = deque(maxlen=self.window)

    # --- state across resumes ---
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('kdzoo_hooks', {})['LossSuppressionHook'] = dict(
            seen=self.seen, first=list(self.first), first_mean=self.first_mean)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('kdzoo_hooks', {}).get('LossSuppressionHook')
        if state:
            self.seen = int(state.get('seen', 0))
            self.first = list(state.get('first', []))
            self.first_mean = state.get('first_mean')

    # --- the check ---
    def _loss(self, runner, outputs) -> Optional[float]:
        if outputs is not None and self.key in outputs:
            return _as_float(outputs[self.key])
        try:
            return float(runner.message_hub.get_scalar(f'train/{self.key}').current())
        except KeyError:
            return None

    def _reduce(self, value: float) -> float:
        if get_world_size() <= 1:
            return value
        import torch
        tensor = torch.tensor([value], dtype=torch.float64)
        all_reduce(tensor, op='mean')
        return float(tensor.item())

    def check(self, loss: float, others: Optional[dict] = None) -> Optional[str]:
        """Add one iteration's ``loss``; the reason to stop (a message) or ``None``."""
        self.seen += 1
        if self.check_finite:
            bad = {k: v for k, v in (others or {}).items() if not math.isfinite(v)}
            if not math.isfinite(loss):
                return f'non-finite: {self.key}={loss}'
            if bad:
                name, value = next(iter(bad.items()))
                return f'non-finite: {name}={value}'
        self.recent.append(loss)
        if len(self.first) < self.window:
            self.first.append(loss)
            if len(self.first) == self.window:
                self.first_mean = sum(self.first) / self.window
        if self.max_loss is not None and loss > self.max_loss:
            return f'too high: {self.key}={loss:.4g} > max_loss={self.max_loss:g}'
        if self.first_mean is None or len(self.first) < self.window:
            return None
        if (self.explode_factor is not None and self.first_mean > 0
                and loss > self.explode_factor * self.first_mean):
            return (f'exploded: {self.key}={loss:.4g} > {self.explode_factor:g} x the '
                    f'first-window mean {self.first_mean:.4g}')
        if (self.patience is not None and self.seen >= self.patience
                and len(self.recent) == self.window):
            last = sum(self.recent) / self.window
            if last >= (1.0 - self.min_decrease) * self.first_mean:
                return (f'no decrease: mean of the last {self.window} losses {last:.4g} >= '
                        f'{1.0 - self.min_decrease:g} x the first-window mean '
                        f'{self.first_mean:.4g} after {self.seen} iterations')
        return None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = self._loss(runner, outputs)
        if loss is None:
            return
        others = {}
        if self.check_finite and outputs is not None:
            for name, value in outputs.items():
                if name != self.key and name.startswith('loss'):
                    try:
                        others[name] = _as_float(value)
                    except (TypeError, ValueError):
                        pass
        if get_world_size() > 1 and not all(map(math.isfinite, others.values())):
            loss = math.nan  # so that every rank stops, not only the one that saw it
        loss = self._reduce(loss)
        reason = self.check(loss, others)
        if reason is not None:
            self.stop(runner, reason, loss)

    def stop(self, runner, reason: str, loss: float) -> None:
        recent = list(self.recent)
        info = dict(reason=reason, kind=reason.split(':', 1)[0], iter=int(runner.iter) + 1,
                    epoch=int(getattr(runner, 'epoch', 0)) + 1, loss=loss,
                    first_window_mean=self.first_mean,
                    last_window_mean=(sum(recent) / len(recent)) if recent else None,
                    recent_losses=recent, key=self.key,
                    thresholds=dict(window=self.window, explode_factor=self.explode_factor,
                                    patience=self.patience, min_decrease=self.min_decrease,
                                    max_loss=self.max_loss))
        if getattr(runner, 'rank', 0) == 0:
            _write_json(osp.join(runner.work_dir, SUPPRESSION_FILE), info)
        message = f'loss suppressed at iteration {info["iter"]}: {reason}'
        runner.logger.error(message)
        raise LossSuppressed(message)


@HOOKS.register_module()
class EarlyStopOnGoodEnoughHook(Hook):
    """End training once the student is "good enough" (Auto-KD's proxy early stopping).

    After each validation: stop when ``metric`` reaches ``threshold`` (``>=`` for
    ``rule='greater'``, ``<=`` for ``'less'``), or when it has not improved by more than
    ``min_delta`` for ``patience`` validations in a row (either may be ``None``). The
    checkpoint of that epoch is already saved, and the last validation row in
    ``scalars.json`` is the trial's value: the reward of the intermediate model. Writes
    ``WORK_DIR/early_stop.json`` (reason, epoch, metric value, max_epochs).

    The counts survive a resume (a successive-halving rung resumes in a new process): the
    hook keeps the validations it has seen (``(iteration, value)`` pairs) in checkpoints and
    in ``WORK_DIR/early_stop_state.json``, written after every validation. MMEngine saves an
    epoch's checkpoint *before* that epoch's validation, so the checkpoint alone lacks the
    last one; a resumed run takes the validations up to the checkpoint's iteration from the
    state file when it was written by the run that saved the checkpoint (a run id in both),
    else from the checkpoint with a warning, and recounts ``best`` and ``wait`` from them.
    """
    priority = 'LOW'

    def __init__(self, metric: str = 'accuracy/top1', threshold: Optional[float] = None,
                 patience: Optional[int] = None, rule: str = 'greater',
                 min_delta: float = 0.0):
        if rule not in ('greater', 'less'):
            raise ValueError(f'EarlyStopOnGoodEnoughHook: rule={rule!r}; valid: greater, less')
        if threshold is None and patience is None:
            raise ValueError('EarlyStopOnGoodEnoughHook needs a threshold or a patience')
        if patience is not None and patience < 1:
            raise ValueError(f'EarlyStopOnGoodEnoughHook: patience must be >= 1, got '
                             f'{patience}')
        self.metric = metric
        self.threshold = threshold
        self.patience = patience
        self.rule = rule
        self.min_delta = float(min_delta)
        self.best: Optional[float] = None
        self.wait = 0
        self.history: list = []  # [iteration, value] of every validation counted
        self.run_id = uuid.uuid4().hex
        self._warned = False

    def _better(self, value: float, than: float) -> bool:
        if self.rule == 'greater':
            return value - than > self.min_delta
        return than - value > self.min_delta

    def _count(self, value: float) -> None:
        if self.best is None or self._better(value, self.best):
            self.best, self.wait = value, 0
        else:
            self.wait += 1

    def update(self, value: float) -> Optional[str]:
        """Add one validation's ``value``; the reason to stop or ``None``."""
        self._count(value)
        if self.threshold is not None and (
                value >= self.threshold if self.rule == 'greater' else value <= self.threshold):
            sign = '>=' if self.rule == 'greater' else '<='
            return f'good enough: {self.metric}={value:.4f} {sign} {self.threshold:g}'
        if self.patience is not None and self.wait >= self.patience:
            return (f'no improvement of {self.metric} for {self.wait} validations '
                    f'(best {self.best:.4f})')
        return None

    # --- state across resumes ---
    def _state(self) -> dict:
        return dict(run_id=self.run_id, metric=self.metric,
                    history=[list(h) for h in self.history], best=self.best, wait=self.wait)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('kdzoo_hooks', {})['EarlyStopOnGoodEnoughHook'] = self._state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('kdzoo_hooks', {}).get('EarlyStopOnGoodEnoughHook')
        cfg = getattr(runner, 'cfg', None)
        if not state or (cfg is not None and not cfg.get('resume', False)):
            return  # nothing saved, or weights loaded (load_from) for a new run
        upto = int(checkpoint.get('meta', {}).get('iter', 0))
        history = state.get('history', [])
        path = osp.join(runner.work_dir, EARLY_STOP_STATE_FILE)
        saved = read_json(path)
        if saved is not None and saved.get('run_id') == state.get('run_id'):
            history = saved.get('history', [])
        else:
            runner.logger.warning(
                f'EarlyStopOnGoodEnoughHook: {path} was not written by the run that saved '
                'this checkpoint; the validation right after the checkpoint (if any) is not '
                'counted')
        self.history = [list(h) for h in history if int(h[0]) <= upto]
        self.best, self.wait = None, 0
        for _, value in self.history:
            self._count(float(value))

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        value = (metrics or {}).get(self.metric)
        if value is None:
            if not self._warned:
                runner.logger.warning(f'EarlyStopOnGoodEnoughHook: no {self.metric!r} in the '
                                      f'validation metrics {sorted(metrics or {})}')
                self._warned = True
            return
        value = _as_float(value)
        if not math.isfinite(value):
            return
        reason = self.update(value)
        self.history.append([int(runner.iter), value])
        if getattr(runner, 'rank', 0) == 0:
            _write_json(osp.join(runner.work_dir, EARLY_STOP_STATE_FILE), self._state())
        if reason is None:
            return
        loop = runner.train_loop
        max_epochs = getattr(loop, 'max_epochs', None)
        info = dict(reason=reason, metric=self.metric, value=value, epoch=int(runner.epoch),
                    iter=int(runner.iter), max_epochs=max_epochs, best=self.best)
        if getattr(runner, 'rank', 0) == 0:
            _write_json(osp.join(runner.work_dir, EARLY_STOP_FILE), info)
        runner.logger.info(f'early stop after epoch {runner.epoch}: {reason}')
        loop.stop_training = True
