from .setup_env import register_all_modules
from .torch_load import allow_mmengine_checkpoints

__all__ = ['register_all_modules', 'allow_mmengine_checkpoints']
