"""Accuracy metric against hand-computed values."""
import pytest
import torch

from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

from kdzoo.evaluation import Accuracy
from kdzoo.registry import METRICS

# 6 classes; for each sample: scores and the label, with its rank noted.
BATCHES = [
    [  # batch 1
        ([0.9, 0.05, 0.01, 0.01, 0.02, 0.01], 0),  # rank 1
        ([0.1, 0.2, 0.3, 0.15, 0.05, 0.2], 3),     # rank 4 (0.3, 0.2, 0.2, 0.15)
        ([0.0, 0.0, 0.1, 0.2, 0.3, 0.4], 0),       # rank 5/6 tie with 1 -> topk order
    ],
    [  # batch 2
        ([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], 5),       # rank 6
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 5),       # rank 1
    ],
    [  # batch 3
        ([0.3, 0.1, 0.2, 0.4, 0.0, 0.0], 2),       # rank 3
        ([0.3, 0.1, 0.2, 0.4, 0.0, 0.0], 1),       # rank 4
        ([0.3, 0.1, 0.2, 0.4, 0.0, 0.0], 4),       # rank 5/6 tie with 5
    ],
]


def expected_hit(scores, label, k):
    order = torch.topk(torch.tensor(scores), k).indices.tolist()
    return label in order


def as_samples(batch, label_kind='tensor'):
    out = []
    for scores, label in batch:
        gt = {'tensor': torch.tensor(label), 'int': label,
              'vector': torch.tensor([label])}[label_kind]
        out.append(dict(pred_score=torch.tensor(scores), gt_label=gt))
    return out


def test_accuracy_hand_computed():
    metric = Accuracy(topk=(1, 5))
    for i, batch in enumerate(BATCHES):
        metric.process({}, as_samples(batch, ('tensor', 'int', 'vector')[i]))
    res = metric.evaluate(size=8)
    assert set(res) == {'accuracy/top1', 'accuracy/top5'}
    # top-1 hits: samples 1 and 5 -> 2/8
    assert res['accuracy/top1'] == pytest.approx(25.0)
    # top-5: ranks 1,4,?,6,1,3,4,? -> certain hits 1,4,1,3,4 = 5, plus the tie cases
    ties = sum(expected_hit(s, l, 5) for s, l in (BATCHES[0][2], BATCHES[2][2]))
    assert res['accuracy/top5'] == pytest.approx(100.0 * (5 + ties) / 8)
    # ties are decided by torch.topk, reproducibly
    again = Accuracy(topk=(1, 5))
    for batch in BATCHES:
        again.process({}, as_samples(batch))
    assert again.evaluate(size=8) == res
    assert metric.results == []  # evaluate() resets


def test_accuracy_without_ties():
    metric = Accuracy(topk=(1, 2, 3))
    samples = [dict(pred_score=torch.tensor([0.1, 0.7, 0.2]), gt_label=torch.tensor(1)),
               dict(pred_score=torch.tensor([0.1, 0.7, 0.2]), gt_label=torch.tensor(2)),
               dict(pred_score=torch.tensor([0.5, 0.3, 0.2]), gt_label=torch.tensor(2)),
               dict(pred_score=torch.tensor([0.5, 0.3, 0.2]), gt_label=torch.tensor(1))]
    metric.process({}, samples[:3])
    metric.process({}, samples[3:])
    res = metric.evaluate(size=4)
    assert res == {'accuracy/top1': pytest.approx(25.0), 'accuracy/top2': pytest.approx(75.0),
                   'accuracy/top3': pytest.approx(100.0)}


def test_accuracy_clips_k_and_prefix():
    metric = Accuracy(topk=(1, 10), prefix='val')
    metric.process({}, [dict(pred_score=torch.tensor([0.2, 0.8]), gt_label=0),
                        dict(pred_score=torch.tensor([0.2, 0.8]), gt_label=1)])
    res = metric.evaluate(size=2)
    assert res == {'val/accuracy/top1': 50.0, 'val/accuracy/top10': 100.0}
    assert Accuracy(topk=5).topk == (5,)
    with pytest.raises(ValueError):
        Accuracy(topk=(0,))
    with pytest.raises(KeyError, match='pred_score'):
        Accuracy().process({}, [dict(gt_label=1)])


def test_accuracy_attribute_samples_and_registry():
    class Sample:
        def __init__(self, score, label):
            self.pred_score = torch.tensor(score)
            self.gt_label = torch.tensor([label])

    with DefaultScope.overwrite_default_scope('kdzoo'):
        evaluator = Evaluator(dict(type='Accuracy', topk=(1, 2)))
    assert isinstance(evaluator.metrics[0], Accuracy)
    assert 'Accuracy' in METRICS.module_dict
    evaluator.process([Sample([0.1, 0.9, 0.0], 1), Sample([0.1, 0.9, 0.0], 0)], {})
    assert evaluator.evaluate(2) == {'accuracy/top1': 50.0, 'accuracy/top2': 100.0}
