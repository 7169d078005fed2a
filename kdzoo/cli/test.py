"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

Works with a plain student config and the student-only checkpoint a distillation run wrote
(``WORK_DIR/student_latest.pth``), and with a distiller config and its full checkpoint.
"""
import argparse
import sys
import json
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from kdzoo.cli.common import add_cfg_options, add_launcher, parse_with_launcher
from kdzoo.engine import setup_cpu_distributed, teardown_distributed, with_kdzoo_default_hooks
from kdzoo.engine.hooks import unwrap
from kdzoo.models import Distiller, load_checkpoint_strict, set_config_dir
from kdzoo.utils import merge_cfg_options, register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    add_cfg_options(parser, 'test_dataloader.batch_size=64')
    add_launcher(parser)
    return parse_with_launcher(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = set_config_dir(Config.fromfile(args.config))  # relative teacher config paths
    merge_cfg_options(cfg, args.cfg_options)  # distill terms by name or by index
    with_kdzoo_default_hooks(cfg, train=False)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None
    cfg.resume = False
    setup_cpu_distributed(cfg)
    try:
        _test(cfg, args)
    finally:
        teardown_distributed()
    return 0


def _test(cfg, args):
    runner = Runner.from_cfg(cfg)
    # Strict loading: a checkpoint that does not fit the model is an error, not a warning.
    model = unwrap(runner.model)
    load_checkpoint_strict(model.student if isinstance(model, Distiller) else model,
                           args.checkpoint, owner='model')
    metrics = runner.test()
    if args.out and runner.rank == 0:
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    return metrics


if __name__ == '__main__':
    sys.exit(main())
