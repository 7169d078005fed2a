from .config_keys import check_keys, missing_keys
from .config_options import merge_cfg_options, resolve_term_names, term_names
from .setup_env import register_all_modules
from .torch_load import allow_mmengine_checkpoints, load_checkpoint_file

__all__ = ['register_all_modules', 'allow_mmengine_checkpoints', 'load_checkpoint_file',
           'check_keys', 'missing_keys',
           'merge_cfg_options', 'resolve_term_names', 'term_names']
