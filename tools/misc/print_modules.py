"""List the hookable module paths of a distiller's student and teacher with output shapes.

    python tools/misc/print_modules.py CONFIG [--shape 1 28 28] [--depth 3]

Runs one forward pass on a batch of the config's validation data (or random inputs of
``--shape``) and prints each module path with its output shape, so distill terms can name
``student='backbone.layer3'`` / ``teacher='backbone.layer3'`` with matching shapes.
"""
import argparse
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config, DictAction
from torch import nn

from kdzoo.models import Distiller, set_config_dir, teacher_forward
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules


def describe(output) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (list, tuple)):
        return '[' + ', '.join(describe(o) for o in output) + ']'
    if isinstance(output, dict):
        return '{' + ', '.join(f'{k}: {describe(v)}' for k, v in output.items()) + '}'
    return type(output).__name__


def module_shapes(model: nn.Module, run, max_depth: int) -> List[Tuple[str, str, str]]:
    """(path, class name, output shape) of every module up to ``max_depth`` dots."""
    rows: Dict[str, Tuple[str, str, str]] = {}
    handles = []
    for name, module in model.named_modules():
        if not name or name.count('.') >= max_depth:
            continue

        def hook(mod, inputs, output, name=name):
            rows.setdefault(name, (name, type(mod).__name__, describe(output)))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    order = [name for name, _ in model.named_modules()]
    return sorted(rows.values(), key=lambda row: order.index(row[0]))


def print_table(title: str, rows) -> None:
    print(f'\n== {title} ==')
    width = max([len(r[0]) for r in rows] + [4])
    cls_width = max([len(r[1]) for r in rows] + [6])
    print(f'{"path".ljust(width)}  {"module".ljust(cls_width)}  output shape')
    for path, cls, shape in rows:
        print(f'{path.ljust(width)}  {cls.ljust(cls_width)}  {shape}')


def sample_batch(cfg, shape):
    if shape is not None:
        return dict(inputs=torch.rand(2, *shape) * 255)
    from mmengine.runner import Runner
    loader_cfg = dict(cfg.val_dataloader, num_workers=0, persistent_workers=False,
                      batch_size=2)
    loader = Runner.build_dataloader(loader_cfg)
    return next(iter(loader))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='input C H W of random inputs instead of real data')
    parser.add_argument('--depth', type=int, default=3, help='max depth of module paths')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    register_all_modules()
    cfg = set_config_dir(Config.fromfile(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    model.eval()
    data = model.data_preprocessor(sample_batch(cfg, args.shape), False)
    inputs, samples = data['inputs'], data.get('data_samples')
    if isinstance(model, Distiller):
        student_rows = module_shapes(
            model.student, lambda: model.student(inputs, samples, mode='tensor'), args.depth)
        print_table('student', student_rows)
        if model.teacher is None:  # a teacher store (or a pool): no one teacher module
            print(f'teacher: {model.teacher_source} (no teacher module to list)')
            return
        teacher_rows = module_shapes(
            model.teacher, lambda: teacher_forward(model.teacher, inputs, samples), args.depth)
        print_table('teacher', teacher_rows)
    else:
        print_table('model', module_shapes(
            model, lambda: model(inputs, samples, mode='tensor'), args.depth))


if __name__ == '__main__':
    main()
