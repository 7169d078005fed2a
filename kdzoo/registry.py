"""kdzoo's registries.

MMEngine's registries are children here under the ``kdzoo`` scope so that configs name
components by string (``type='Distiller'``) without imports; ``locations`` tell MMEngine
which modules to import the first time a registry is used.

``KD_TRANSFORMS`` holds *knowledge* transforms (the T in ``D(T(A_s/tau), T(A_t/tau))``);
``TRANSFORMS`` keeps its MMEngine meaning: data-pipeline steps.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

# --- MMEngine registries, scoped to kdzoo -------------------------------------------------
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['kdzoo.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['kdzoo.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['kdzoo.engine'])
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS,
                          locations=['kdzoo.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['kdzoo.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          locations=['kdzoo.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      locations=['kdzoo.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            locations=['kdzoo.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS,
                    locations=['kdzoo.datasets', 'kdzoo.teaching'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS,
                         locations=['kdzoo.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS,
                      locations=['kdzoo.datasets', 'kdzoo.teaching'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['kdzoo.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS,
                          locations=['kdzoo.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               locations=['kdzoo.models'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['kdzoo.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['kdzoo.evaluation'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['kdzoo.engine'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, locations=['kdzoo.engine'])

# --- kdzoo's own registries ---------------------------------------------------------------
# Network architectures, students and teachers alike (the CIFAR KD zoo, timm, torchvision);
# see TEACHERS for where a teacher comes from.
ARCHITECTURES = Registry('architecture', scope='kdzoo',
                         locations=['kdzoo.models.architectures'])
# Teacher sources: a model config + checkpoint, a config file (local, mmdet::, mmseg::),
# a timm / torchvision name; each builds a frozen teacher module.
TEACHERS = Registry('teacher', scope='kdzoo', locations=['kdzoo.models.teachers'])
# Knowledge transforms T and distances D of a distill term.
KD_TRANSFORMS = Registry('kd_transform', scope='kdzoo', locations=['kdzoo.kd'])
DISTANCES = Registry('distance', scope='kdzoo', locations=['kdzoo.kd'])
# Connectors that align student features to the teacher's shape.
CONNECTORS = Registry('connector', scope='kdzoo', locations=['kdzoo.models.connectors'])
# Distiller searchers (random, MCTS, NSGA-II, successive halving).
SEARCHERS = Registry('searcher', scope='kdzoo', locations=['kdzoo.search'])

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS',
    'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'METRICS', 'EVALUATOR',
    'VISUALIZERS', 'VISBACKENDS', 'ARCHITECTURES', 'TEACHERS', 'KD_TRANSFORMS', 'DISTANCES',
    'CONNECTORS', 'SEARCHERS'
]
