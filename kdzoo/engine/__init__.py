from .autokd_reward import AutoKDRewardHook, autokd_reward  # noqa: F401
from .distributed import (CPUDistributedDataParallel, setup_cpu_distributed,
                          teardown_distributed)
from .dynakd import DynaKDSearchHook, HeldOutSplit, held_out_indices  # noqa: F401
from .finite_loss import DIVERGED_FILE, FiniteLossHook, NonFiniteLossError
from .hooks import StudentCheckpointHook
from .interrupt import DeferredInterrupt, InterruptHook
from .kdep_hooks import KDEPFitHook  # noqa: F401
from .optimizers import SHAMPOO_OPTIMIZERS  # noqa: F401  (registers Shampoo)
from .proxy_hooks import EarlyStopOnGoodEnoughHook, LossSuppressed, LossSuppressionHook
from .sparse import SparseTrainingHook  # noqa: F401
from .seeding import KDZOO_DEFAULT_HOOKS, StepSeedHook, with_kdzoo_default_hooks

__all__ = ['StudentCheckpointHook', 'CPUDistributedDataParallel', 'setup_cpu_distributed',
           'teardown_distributed', 'LossSuppressionHook', 'EarlyStopOnGoodEnoughHook',
           'LossSuppressed', 'FiniteLossHook', 'NonFiniteLossError', 'DIVERGED_FILE',
           'StepSeedHook', 'KDZOO_DEFAULT_HOOKS', 'with_kdzoo_default_hooks',
           'DeferredInterrupt', 'InterruptHook']
