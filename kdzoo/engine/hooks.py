"""Training hooks of kdzoo."""
import os.path as osp
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

from kdzoo.registry import HOOKS


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """Saves student-only checkpoints that the plain student config loads.

    Writes ``student_epoch_{N}.pth`` (or ``student_iter_{N}.pth``) every ``interval`` and
    ``student_latest.pth`` after each save; the teacher, the connectors and the optimizer are
    left out. Use ``tools/test.py STUDENT_CONFIG WORK_DIR/student_latest.pth``.
    """
    priority = 'VERY_LOW'

    def __init__(self, interval: int = 1, by_epoch: bool = True, save_last: bool = True):
        self.interval = interval
        self.by_epoch = by_epoch
        self.save_last = save_last

    def after_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (
                self.save_last and self.is_last_train_epoch(runner)):
            self._save(runner, f'student_epoch_{runner.epoch + 1}.pth')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval) or (
                self.save_last and self.is_last_train_iter(runner)):
            self._save(runner, f'student_iter_{runner.iter + 1}.pth')

    def _save(self, runner, filename: str) -> None:
        student = getattr(unwrap(runner.model), 'student', None)
        if student is None or runner.rank != 0:
            return  # not a distiller: MMEngine's own checkpoint is already student-only
        checkpoint = dict(
            meta=dict(epoch=runner.epoch + 1 if self.by_epoch else runner.epoch,
                      iter=runner.iter + 1, experiment_name=runner.experiment_name,
                      dataset_meta=getattr(runner.train_dataloader.dataset, 'metainfo', None),
                      source='kdzoo student-only checkpoint'),
            state_dict=weights_to_cpu(get_state_dict(student)))
        path = osp.join(runner.work_dir, filename)
        save_checkpoint(checkpoint, path)
        save_checkpoint(checkpoint, osp.join(runner.work_dir, 'student_latest.pth'))
        runner.logger.info(f'student-only checkpoint saved to {path}')
