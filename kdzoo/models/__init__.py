from . import architectures  # noqa: F401  (registers the model zoo)
from .checkpoint import load_checkpoint_strict, read_state_dict
from .classifier import ImageClassifier, build_architecture
from .connectors import ConvConnector, LinearConnector, ResizeConnector
from .distiller import DistillDataPreprocessor, Distiller
from .recorder import FeatureRecorder, find_module
from .teachers import (ConfigTeacher, ModelTeacher, TimmTeacher, TorchvisionTeacher,
                       build_teacher, resolve_config_path, set_config_dir, teacher_forward)

__all__ = [
    'ImageClassifier', 'build_architecture', 'Distiller', 'DistillDataPreprocessor',
    'FeatureRecorder', 'find_module', 'ConvConnector', 'LinearConnector', 'ResizeConnector',
    'ModelTeacher', 'ConfigTeacher', 'TimmTeacher', 'TorchvisionTeacher', 'build_teacher',
    'teacher_forward', 'load_checkpoint_strict', 'read_state_dict', 'resolve_config_path',
    'set_config_dir'
]
