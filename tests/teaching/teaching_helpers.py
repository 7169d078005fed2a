"""The small teaching set-up of the tests: the FunMatch Fashion-MNIST config on the tiny
IDX data, with a saved (random) teacher checkpoint and a spatial feature term."""
import copy
import os.path as osp

import torch
from mmengine.config import Config
from torch.utils.data import default_collate

from kdzoo.models import set_config_dir
from kdzoo.registry import DATASETS, MODELS
from kdzoo.teaching import apply_teaching

CONFIG = 'configs/funmatch/funmatch_fmnist.py'
FEATURE_TERM = dict(name='feat', student='backbone.layer2', teacher='backbone.layer2',
                    transforms=['satt'], distance='l2', weight=3.0)


def save_teacher(path: str, seed: int = 0) -> str:
    """A resnet20 Fashion-MNIST teacher checkpoint (random weights, seeded)."""
    torch.manual_seed(seed)
    cfg = Config.fromfile('configs/fashion_mnist/teacher_fmnist.py')
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def teaching_cfg(fmnist_root: str, ckpt: str, mode: str = 'same/ic', indices: int = 24,
                 feature: bool = True, **teaching) -> Config:
    cfg = set_config_dir(Config.fromfile(CONFIG))
    cfg.model.teacher_checkpoint = ckpt
    if feature:
        cfg.model.distill_terms = list(cfg.model.distill_terms) + [dict(FEATURE_TERM)]
    cfg.teaching.mode = mode
    if mode != 'funmatch':
        cfg.teaching.pop('mixup_alpha')
    cfg.teaching.update(teaching)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = fmnist_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.dataset.indices = indices
    cfg.train_dataloader.batch_size = 8
    return cfg


def build(cfg: Config):
    """``(model, train dataset)`` of a config, the teaching applied."""
    cfg = apply_teaching(copy.deepcopy(cfg))
    return MODELS.build(cfg.model), DATASETS.build(cfg.train_dataloader.dataset)


def batch_of(dataset, indices, seed=0, epoch=0):
    return default_collate([dataset.get_seeded(i, seed, epoch) for i in indices])


def losses_of(model, batch, seed=0):
    """The training losses of one batch (mixup draws seeded)."""
    model.train()
    torch.manual_seed(seed)
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')


ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
