"""Run a config's teacher once over its training set and store its outputs:
``python tools/build_teacher_store.py CONFIG --out DIR``.

The config needs a top-level ``teaching=dict(mode=..., size=...)``: the store holds the
teacher's outputs on that mode's teacher views (``--replays`` random views per sample for
``same/*`` and ``ind/*``). Train from it with ``--cfg-options teaching.store=DIR`` (or
``search.proxy.teacher_store=DIR`` in a search). A killed build resumes when run again;
``--shard I/N`` builds one of N parts (one process each).
"""
import argparse
import sys

from mmengine.config import Config

from kdzoo.cli.common import add_cfg_options
from kdzoo.models import set_config_dir
from kdzoo.utils import merge_cfg_options, register_all_modules


def parse_shard(text: str):
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--shard {text!r}: write I/N, e.g. 0/4') from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f'--shard {text!r}: need 0 <= I < N')
    return i, n


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--out', required=True, help='the store directory')
    parser.add_argument('--replays', type=int, default=4,
                        help='random views stored per sample (same/*, ind/* modes)')
    parser.add_argument('--fp16', action='store_true', help='store float16 outputs')
    parser.add_argument('--topk', type=int, help='keep the k largest logits (+ log-sum-exp)')
    parser.add_argument('--outputs', nargs='+', default=[],
                        help='teacher module paths to store besides the terms\' ones')
    parser.add_argument('--shard', type=parse_shard, default=(0, 1), help='I/N')
    parser.add_argument('--seed', type=int, help='the views\' seed (default: randomness.seed)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if any)')
    parser.add_argument('--no-progress', action='store_true')
    add_cfg_options(parser, 'teaching.mode=same/rc')
    return parser.parse_args(argv)


def main(argv=None):
    import torch

    from kdzoo.teaching.build import build_store
    args = parse_args(argv)
    register_all_modules()
    cfg = set_config_dir(Config.fromfile(args.config))
    merge_cfg_options(cfg, args.cfg_options)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    out = build_store(cfg, args.out, replays=args.replays,
                      dtype='float16' if args.fp16 else 'float32', topk=args.topk,
                      shard=args.shard, seed=args.seed, extra_outputs=args.outputs,
                      batch_size=args.batch_size, device=device,
                      progress=not args.no_progress)
    print(f'teacher store shard {args.shard[0]}/{args.shard[1]} complete: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
