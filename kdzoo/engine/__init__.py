from .distributed import (CPUDistributedDataParallel, setup_cpu_distributed,
                          teardown_distributed)
from .hooks import StudentCheckpointHook
from .proxy_hooks import EarlyStopOnGoodEnoughHook, LossSuppressed, LossSuppressionHook

__all__ = ['StudentCheckpointHook', 'CPUDistributedDataParallel', 'setup_cpu_distributed',
           'teardown_distributed', 'LossSuppressionHook', 'EarlyStopOnGoodEnoughHook',
           'LossSuppressed']
