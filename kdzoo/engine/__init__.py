from .distributed import (CPUDistributedDataParallel, setup_cpu_distributed,
                          teardown_distributed)
from .hooks import StudentCheckpointHook

__all__ = ['StudentCheckpointHook', 'CPUDistributedDataParallel', 'setup_cpu_distributed',
           'teardown_distributed']
