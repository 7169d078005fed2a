# The space of the tabular search benchmark v2 (docs/search_benchmark.md): the Fashion-MNIST
# pair (resnet20 teacher, resnet8 student) with a logit term, a feature term on the last
# stage and the student's width:
#   logits: distance kl | rkl (reverse KL) | pearson (DIST's inter-class term)
#           x  tau 1 | 4                                                           (6)
#   layer3: transform satt (AT) | sample_sim (SP), distance l2  x  weight 100 | 1000 (4)
#   student: width_mult 0.25 | 0.5                                                 (2)
# = 48 distillers, each trained with seeds 0, 1 and 2 by
#   python tools/analysis/build_tabular_benchmark.py --benchmark v2 --seed S
# into kdzoo/benchmarks/data/fmnist_kd_v2_table_seed{0,1,2}.csv (averaged on load).
# Both feature transforms reduce the channels away (AT: (N, H*W), SP: (N, N)), so the term
# needs no connector and every width is valid.
#
# The proxy is long enough for the ranking to hold from seed to seed: 10k training images,
# 4 epochs (316 SGD steps; gradients clipped at norm 2: in the pilot, two seeds of the SP
# term at weight 1000 differed by 6.7 points without the clip, 1.3 with it), validation
# once at the end on 5000 images held out of the training split (the test split is never
# read). The teacher never runs: its logits and layer3 maps come from an offline store of
# `fix/rs` views (teacher and student see the same unaugmented image, so no augmentation
# draw adds noise to a row). It is also an ordinary search config:
#   python tools/build_teacher_store.py configs/search/tabular_fmnist_v2_space.py \
#       --out work_dirs/tabular_fmnist_v2/store \
#       --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
#   python tools/search.py configs/search/tabular_fmnist_v2_space.py \
#       --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['../fashion_mnist/kd_fmnist.py']
teaching = dict(mode='fix/rs', size=28, teacher_size=28)
search = dict(
    searcher=dict(type='mcts', exploration=0.5, reward='metric'),
    n_trials=40,
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=dict(
        terms=[
            dict(name='kd', student='backbone.fc', teacher='backbone.fc', input_rank=2,
                 # every one changes with tau (l2 would not: tau^2 * |s/tau - t/tau|^2)
                 distance=['kl', 'rkl', 'pearson'],
                 weight=1.0,
                 tau=[1.0, 4.0]),
            dict(name='feat', student='backbone.layer3', teacher='backbone.layer3',
                 input_rank=4,
                 transform_slots=[['satt', 'sample_sim']],
                 distance='l2',
                 weight=[100.0, 1000.0],
                 tau=1.0),
        ],
        student=dict(width_mult=[0.25, 0.5]),
    ),
    validation=dict(val_size=5000, seed=0, stratified=True),
    proxy=dict(train_indices=10000, max_epochs=4, val_interval=4,
               teacher_store='work_dirs/tabular_fmnist_v2/store',
               cfg_options={
                   'optim_wrapper.clip_grad': dict(max_norm=2.0),
                   'train_dataloader.num_workers': 0,
                   'train_dataloader.persistent_workers': False,
                   'val_dataloader.num_workers': 0,
                   'val_dataloader.persistent_workers': False,
               }),
)
