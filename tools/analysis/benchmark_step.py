"""Measure the overhead of distillation over its parts, in one run.

    python tools/analysis/benchmark_step.py CONFIG [--batch-size 64] [--shape 3 32 32]

Times, on random inputs of the config's shape:
  (a) student forward + backward alone (its task loss),
  (b) teacher forward alone (no_grad, eval mode),
  (c) the full distill step: distiller forward (student + teacher + terms) + backward,
and reports c / (a + b): what hooks, transforms and distances cost on top of the two
networks. The target is <= 1.10. Median over ``--reps`` after ``--warmup`` runs.
"""
import argparse
import json
import statistics
import time

import torch
from mmengine.config import Config, DictAction

from kdzoo.models import Distiller, set_config_dir, teacher_forward
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules


def timed(fn, reps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--shape', type=int, nargs=3, default=[3, 32, 32])
    parser.add_argument('--num-classes', type=int, default=None,
                        help='label range (default: the config\'s num_classes or 10)')
    parser.add_argument('--reps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()
    cfg = set_config_dir(Config.fromfile(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    device = torch.device(args.device)
    model = MODELS.build(cfg.model).to(device)
    if not isinstance(model, Distiller):
        raise TypeError(f'{args.config} is not a distiller config')
    model.train()
    num_classes = args.num_classes or cfg.get('num_classes', 10)
    torch.manual_seed(0)
    inputs = torch.randn(args.batch_size, *args.shape, device=device)
    samples = dict(gt_label=torch.randint(0, num_classes, (args.batch_size,), device=device))
    student, teacher = model.student, model.teacher

    def student_step():
        losses = student(inputs, samples, mode='loss')
        sum(losses.values()).backward()

    def teacher_step():
        with torch.no_grad():
            teacher_forward(teacher, inputs, samples)

    def distill_step():
        losses = model(inputs, samples, mode='loss')
        sum(losses.values()).backward()

    a = timed(student_step, args.reps, args.warmup, device)
    b = timed(teacher_step, args.reps, args.warmup, device)
    c = timed(distill_step, args.reps, args.warmup, device)
    result = dict(config=args.config, device=str(device), batch_size=args.batch_size,
                  threads=torch.get_num_threads(), student_fwd_bwd_ms=a * 1e3,
                  teacher_fwd_ms=b * 1e3, distill_step_ms=c * 1e3, ratio=c / (a + b))
    print(f'device {device}, batch {args.batch_size}, {torch.get_num_threads()} threads')
    print(f'(a) student forward+backward : {a * 1e3:8.1f} ms')
    print(f'(b) teacher forward          : {b * 1e3:8.1f} ms')
    print(f'(c) distill step             : {c * 1e3:8.1f} ms')
    print(f'c / (a + b) = {c / (a + b):.3f}  (target <= 1.10)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
