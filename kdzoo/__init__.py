from .utils.torch_load import allow_mmengine_checkpoints
from .version import __version__

# MMEngine 0.10.7 + torch >= 2.6: let ``--resume`` read MMEngine checkpoints.
allow_mmengine_checkpoints()

__all__ = ['__version__']
