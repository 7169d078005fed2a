from .config_keys import check_keys, missing_keys
from .setup_env import register_all_modules
from .torch_load import allow_mmengine_checkpoints

__all__ = ['register_all_modules', 'allow_mmengine_checkpoints', 'check_keys', 'missing_keys']
