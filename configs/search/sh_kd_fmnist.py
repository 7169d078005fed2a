# UniADS' successive halving with loss suppression over logit distillers for the
# Fashion-MNIST quick-start pair: 16 candidates x 1 epoch -> 8 x 2 -> 4 x 4 epochs (each
# survivor resumes from its checkpoint), then a second bracket of 16 new candidates drawn
# with the sampling probabilities lowered for the operations of suppressed candidates.
# python tools/search.py configs/search/sh_kd_fmnist.py \
#     --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['../fashion_mnist/kd_fmnist.py']
search = dict(
    searcher=dict(
        type='successive_halving',
        n_candidates=16, eta=2, min_budget=1, max_budget=4, brackets=2,
        suppression_factor=0.5,     # per suppressed candidate that used the operation
        poor_factor=1.0,            # per candidate eliminated at a rung (1.0: off)
        refill=False,
        # initial weights (default uniform); UniADS' frequent weights / temperatures first
        probabilities={'kd0.weight': {16.0: 2.0, 5.0: 2.0},
                       'kd0.tau': {8.0: 2.0, 16.0: 2.0}},
    ),
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=dict(
        terms=[
            dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                 transform_slots=[['no', 'bn', 'tanh', 'norm_C', 'softmax_C']],
                 distance=['kl', 'l2', 'cosine', 'pearson'],
                 weight=[0.5, 1.0, 5.0, 16.0],
                 tau=[1.0, 4.0, 8.0, 16.0]),
        ],
    ),
    # The proxy: a 2000-image subset; schedules span max_budget epochs, every rung trains
    # a prefix of them. Loss suppression stops candidates that cannot train; a candidate
    # that reaches 95% top-1 stops early (its last validation is its value).
    proxy=dict(
        train_indices=2000,
        suppression=dict(window=10, explode_factor=10.0, patience=40, min_decrease=0.0),
        good_enough=dict(metric='accuracy/top1', threshold=95.0),
    ),
)
