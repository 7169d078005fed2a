"""Rank candidate KDEP teachers by the compactness of their penultimate features.

    python tools/analysis/teacher_compactness.py CONFIG --checkpoint A.pth B.pth ...
        [--teacher-config TA.py TB.py ...] [--feature PATH] [--num-samples 2048]
        [--k 32] [--out ranking.json] [--cfg-options KEY=VALUE ...]

KDEP (He et al., CVPR 2022) finds that a stronger teacher is not always a better KDEP teacher:
teachers whose feature distribution is *compact* (its spread concentrated in a few
directions) transfer worse. For every candidate this tool runs the teacher over
``--num-samples`` images of CONFIG's training data (a fixed, seeded subset; the training
pipeline as configured), takes the pooled penultimate feature and reports
:func:`kdzoo.kd.transforms.kdep.feature_compactness` of the centred features:

* ``effective rank`` ``exp(H(s / sum s))`` of the singular values ``s`` (Roy & Vetterli,
  2007): the number of directions that carry the spread. It is the ranking key (highest
  first = least compact = the preferred KDEP teacher) because it is unchanged by the
  features' scale and by rotations, so teachers of different architectures and feature
  magnitudes compare on the same footing;
* ``compactness`` ``1 - erank / D``, ``top-1 share`` (variance share of the first
  direction), and, with the student's dim ``k``, the ``std ratio`` ``s_1 / s_k`` after
  KDEP's SVD projection (the channel-std spread that SN / SM / PTS correct) and the
  variance share that projection keeps.

CONFIG is either a KDEP (distiller) config, whose ``teacher`` is built once per checkpoint
(the feature: the first distill term's teacher path; ``k``: the student's feature dim,
measured), or a classifier config (every checkpoint is that classifier; the feature
defaults to ``backbone.fc:input``, the pooled feature its last layer receives).
``--teacher-config`` gives each checkpoint its own classifier config (teachers of different
architectures). A feature map (rank 4) is average-pooled.
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import default_collate  # noqa: E402

from kdzoo.datasets.seeding import sample_seed, seeded_rngs  # noqa: E402
from kdzoo.kd.transforms.kdep import feature_compactness  # noqa: E402
from kdzoo.registry import DATASETS, MODELS  # noqa: E402
from kdzoo.utils import merge_cfg_options, register_all_modules  # noqa: E402

DEFAULT_FEATURE = 'backbone.fc:input'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a KDEP distiller config or a classifier config')
    parser.add_argument('--checkpoint', nargs='+', required=True,
                        help='one checkpoint per candidate teacher')
    parser.add_argument('--teacher-config', nargs='+', default=None,
                        help='a classifier config per checkpoint (default: CONFIG\'s teacher)')
    parser.add_argument('--feature', default=None,
                        help=f'feature source in the teacher (default: the first term\'s '
                             f'teacher path, or {DEFAULT_FEATURE})')
    parser.add_argument('--num-samples', type=int, default=2048)
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--k', type=int, default=None,
                        help="the student's feature dim (default: measured for a KDEP config)")
    parser.add_argument('--out', default=None, help='write the ranking as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override CONFIG keys (e.g. a data_root)')
    return parser.parse_args(argv)


def load_config(path: str, options=None) -> Config:
    cfg = Config.fromfile(path)
    if options:
        merge_cfg_options(cfg, options)
    return cfg


def pooled(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1)


class Candidates:
    """Builds each candidate teacher and says how to preprocess and what to record."""

    def __init__(self, cfg: Config, args):
        from kdzoo.models.distiller import classifier_shape
        self.cfg, self.args = cfg, args
        model = cfg.model
        self.distiller = model.get('type') == 'Distiller'
        self.student = None
        if self.distiller:
            student_cfg = dict(model.student)
            if model.get('data_preprocessor') is not None:
                student_cfg.setdefault('data_preprocessor', model.data_preprocessor)
            self.student = MODELS.build(student_cfg).eval()
            self.student_shape = classifier_shape(self.student)
            term = model.distill_terms[0]
            self.feature = args.feature or term['teacher']
            self.student_feature = term['student']
        else:
            self.feature = args.feature or DEFAULT_FEATURE
        if args.teacher_config and len(args.teacher_config) != len(args.checkpoint):
            raise SystemExit(f'--teacher-config gives {len(args.teacher_config)} configs for '
                             f'{len(args.checkpoint)} checkpoints; give one per checkpoint '
                             f'or none')

    def build(self, index: int):
        """``(name, teacher module, preprocessor)`` of candidate ``index``."""
        from kdzoo.models import build_teacher, load_checkpoint_strict
        ckpt = self.args.checkpoint[index]
        if self.args.teacher_config:
            config = self.args.teacher_config[index]
            model = MODELS.build(Config.fromfile(config).model)
            load_checkpoint_strict(model, ckpt, owner='teacher')
            return f'{config} @ {ckpt}', model.eval(), model.data_preprocessor
        if self.distiller:
            model = self.cfg.model
            teacher = build_teacher(model.teacher, config_dir=osp.dirname(
                osp.abspath(self.args.config)), checkpoint=ckpt, **self.student_shape)
            return ckpt, teacher, self.student.data_preprocessor
        model = MODELS.build(self.cfg.model)
        load_checkpoint_strict(model, ckpt, owner='teacher')
        return ckpt, model.eval(), model.data_preprocessor


def batches(dataset, num_samples: int, batch_size: int, seed: int):
    from kdzoo.engine.kdep_hooks import FIT_REPLAY, fit_indices
    indices = fit_indices(len(dataset), num_samples, seed)
    for start in range(0, len(indices), batch_size):
        items = []
        for i in indices[start:start + batch_size]:
            with seeded_rngs(sample_seed(seed, 0, i, FIT_REPLAY)):
                items.append(dataset[i])
        yield default_collate(items)


@torch.no_grad()
def features_of(module, preprocessor, path: str, data) -> torch.Tensor:
    from kdzoo.models import FeatureRecorder
    from kdzoo.models.teachers import teacher_forward
    recorder = FeatureRecorder(module, [path], owner='teacher')
    parts = []
    try:
        for batch in data:
            out = preprocessor(batch, False)
            with recorder:
                teacher_forward(module, out['inputs'], out.get('data_samples'))
                parts.append(pooled(recorder.get(path)).double())
    finally:
        recorder.remove()
    return torch.cat(parts)


def rank(results):
    """Least compact (highest effective rank) first."""
    return sorted(results, key=lambda r: -r['effective_rank'])


def format_table(results) -> str:
    head = ['rank', 'teacher', 'D', 'eff. rank', 'compactness', 'top-1 share']
    with_k = any('std_ratio' in r for r in results)
    if with_k:
        head += ['k', 'std ratio s1/sk', 'top-k share']
    rows = [head]
    for i, r in enumerate(results, 1):
        row = [str(i), r['teacher'], str(r['dim']), f'{r["effective_rank"]:.2f}',
               f'{r["compactness"]:.3f}', f'{r["top1_share"]:.3f}']
        if with_k:
            row += [str(r.get('k', '')), f'{r.get("std_ratio", float("nan")):.2f}',
                    f'{r.get("topk_share", float("nan")):.3f}']
        rows.append(row)
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    candidates = Candidates(cfg, args)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    data = list(batches(dataset, args.num_samples, args.batch_size, args.seed))
    k = args.k
    if k is None and candidates.distiller:
        with torch.no_grad():
            student_feats = features_of(candidates.student, candidates.student.data_preprocessor,
                                        candidates.student_feature, data[:1])
        k = int(student_feats.shape[1])
    results = []
    for i in range(len(args.checkpoint)):
        name, module, preprocessor = candidates.build(i)
        feats = features_of(module, preprocessor, candidates.feature, data)
        kk = min(k, feats.shape[1]) if k else None
        results.append(dict(teacher=name, feature=candidates.feature,
                            **feature_compactness(feats, kk)))
    results = rank(results)
    print(f'KDEP teacher compactness over {sum(len(b["inputs"]) for b in data)} '
          f'samples of {args.config} (feature {candidates.feature}); least compact first:')
    print(format_table(results))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
