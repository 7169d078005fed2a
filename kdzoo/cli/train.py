"""Train a model or a distiller from a config: ``python tools/train.py CONFIG``.

Ctrl-C ends the run at the next iteration boundary (a second Ctrl-C: at once) with one line
(``interrupted at epoch E iter I; resume with --resume``) and exit code 130; a run stopped
by a non-finite loss or by loss suppression ends with one ``NonFiniteLossError: ...`` /
``LossSuppressed: ...`` line and exit code 1.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.runner import Runner

from kdzoo.cli.common import add_cfg_options, add_launcher, parse_with_launcher
from kdzoo.engine import (DeferredInterrupt, InterruptHook, LossSuppressed, NonFiniteLossError,
                          setup_cpu_distributed, teardown_distributed,
                          with_kdzoo_default_hooks)
from kdzoo.models import set_config_dir
from kdzoo.teaching import apply_teaching
from kdzoo.utils import merge_cfg_options, register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model or a distiller')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT; without a value, from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    add_cfg_options(parser, 'model.distill_terms.kd0.weight=2.0 train_cfg.max_epochs=5')
    add_launcher(parser)
    return parse_with_launcher(parser, argv)


def merge_args(cfg: Config, args) -> Config:
    merge_cfg_options(cfg, args.cfg_options)
    apply_teaching(cfg)  # teaching=dict(mode=...) -> the distiller and the train dataset
    with_kdzoo_default_hooks(cfg)  # the finite-loss check and per-step seeding
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a GPU: MMEngine\'s AmpOptimWrapper supports CUDA, '
                             'NPU, MLU and MUSA devices only; drop --amp on CPU')
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', dict(enable=True, base_batch_size=256))
        cfg.auto_scale_lr.enable = True
    return cfg


def interrupted_message(runner, cfg: Config) -> str:
    """The line printed on Ctrl-C: where training was, and where ``--resume`` continues."""
    info = runner.message_hub.get_info if runner is not None else (lambda key: None)
    epoch, iteration = info('epoch'), info('iter')
    if iteration is None:
        return 'interrupted before training started'
    by_epoch = (cfg.get('train_cfg') or {}).get('by_epoch', True)
    where = (f'epoch {int(epoch) + 1} iter {int(iteration) + 1}' if by_epoch and epoch is not None
             else f'iter {int(iteration) + 1}')
    last = osp.join(cfg.work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            since = f' (from {f.read().strip()})'
    else:
        since = ' (no checkpoint saved yet: it starts over)'
    return f'interrupted at {where}; resume with --resume{since}'


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    cfg = set_config_dir(Config.fromfile(args.config))  # relative teacher config paths
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg)
    runner, finished = None, False
    try:
        runner = Runner.from_cfg(cfg)
        # Ctrl-C stops between iterations (no batch in transit from a worker); twice: at once.
        with DeferredInterrupt() as interrupt:
            runner.register_hook(InterruptHook(interrupt))
            runner.train()
        finished = True
    except KeyboardInterrupt:
        if get_rank() == 0:
            print(interrupted_message(runner, cfg), file=sys.stderr, flush=True)
        raise SystemExit(130)
    except (NonFiniteLossError, LossSuppressed) as err:  # an expected stop, not a crash
        print(f'{type(err).__name__}: {err}', file=sys.stderr, flush=True)
        raise SystemExit(1)
    finally:
        teardown_distributed(finished)


if __name__ == '__main__':
    sys.exit(main())
