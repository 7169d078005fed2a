"""Watching a trial's training from the outside, while it runs in its child process.

:class:`TrainingWatch` reads what MMEngine writes into the trial's work dir as it grows:
the new rows of ``<timestamp>/vis_data/scalars.json`` (each validation row is an
intermediate value of the trial, reported to Optuna) and the last ``Epoch(train)`` line of
the training log (epoch, iteration, ETA, for the progress display).
"""
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

_TRAIN_LINE = re.compile(rb'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\].*?eta: (\S+)')


class TrainingWatch:
    """The progress of one training run in ``trial_dir``.

    Args:
        trial_dir: the run's work dir (MMEngine makes ``<timestamp>/`` under it).
        log_path: the file the child's output goes to.
        metric: the validation key reported as the trial's intermediate value.
        since: only scalars files written after this time (a resumed rung writes a new
            timestamp dir next to the earlier ones).
    """

    def __init__(self, trial_dir: str, log_path: str, metric: str, since: float):
        self.trial_dir = trial_dir
        self.log_path = log_path
        self.metric = metric
        self.since = since
        self._scalars: Optional[str] = None
        self._offset = 0
        self.epoch = self.iter = self.iters = None
        self.eta: Optional[str] = None

    def _scalars_file(self) -> Optional[str]:
        if self._scalars is None:
            files = [f for f in glob.glob(osp.join(self.trial_dir, '*', 'vis_data',
                                                   'scalars.json'))
                     if osp.getmtime(f) >= self.since - 1]
            self._scalars = max(files, key=osp.getmtime) if files else None
        return self._scalars

    def new_values(self) -> List[Tuple[int, float]]:
        """``(epoch, value)`` of the validations written since the last call."""
        path = self._scalars_file()
        if path is None:
            return []
        try:
            with open(path, 'rb') as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b'\n') + 1  # only whole lines: the child may be mid-write
        self._offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            value = row.get(self.metric)
            if isinstance(value, (int, float)) and 'step' in row:
                out.append((int(row['step']), float(value)))
        return out

    def progress(self) -> Dict[str, object]:
        """The last training line's epoch, iteration, iterations per epoch and ETA."""
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 8192))
                tail = f.read()
        except OSError:
            tail = b''
        matches = _TRAIN_LINE.findall(tail)
        if matches:
            epoch, it, iters, eta = matches[-1]
            self.epoch, self.iter, self.iters = int(epoch), int(it), int(iters)
            self.eta = eta.decode(errors='replace')
        return dict(epoch=self.epoch, iter=self.iter, iters=self.iters, eta=self.eta)
