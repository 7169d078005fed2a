"""Ctrl-C that stops training between iterations.

A ``KeyboardInterrupt`` raised at an arbitrary point can land while the main process is
receiving a batch from a data worker (torch passes tensors by file descriptor); the worker
then prints a ``BrokenPipeError`` / ``ConnectionResetError`` traceback as the run exits.
:class:`DeferredInterrupt` turns the first SIGINT into a request that
:class:`InterruptHook` honours at the next safe point (before an epoch or an iteration of
training or validation, when no batch is in transit) by raising ``KeyboardInterrupt``; a
second Ctrl-C raises at once. ``tools/train.py`` uses both and prints one line.
"""
import signal
import threading

from mmengine.hooks import Hook


class DeferredInterrupt:
    """Context manager: while active, the first SIGINT only sets :attr:`requested`
    (:meth:`check` raises ``KeyboardInterrupt`` then); a second SIGINT raises at once. The
    previous handler is restored on exit. Outside the main thread it does nothing."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False


class InterruptHook(Hook):
    """Raise ``KeyboardInterrupt`` at the first safe point after a deferred Ctrl-C (see
    :class:`DeferredInterrupt`). Added by ``tools/train.py``; not meant for configs."""
    priority = 'HIGHEST'

    def __init__(self, interrupt: DeferredInterrupt):
        self.interrupt = interrupt

    def before_train_epoch(self, runner) -> None:
        self.interrupt.check()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.interrupt.check()

    def before_val_epoch(self, runner) -> None:
        self.interrupt.check()

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self.interrupt.check()


__all__ = ['DeferredInterrupt', 'InterruptHook']
