"""What every kdzoo program parses the same way."""
import argparse
import os

from mmengine.config import DictAction


def add_cfg_options(parser: argparse.ArgumentParser, example: str) -> None:
    """``--cfg-options k=v ...`` (distill terms by name or by index)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override config entries, e.g. {example} (distill terms by '
                        f'name or by index: model.distill_terms.kd0.tau=2)')


def add_launcher(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and torch.distributed's ``--local-rank``."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_with_launcher(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and expose ``--local-rank`` as ``LOCAL_RANK`` (older launchers pass only the
    argument)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
