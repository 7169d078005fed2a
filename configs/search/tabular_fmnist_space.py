# The space of the tabular search benchmark (docs/search_benchmark.md): one logit term of
# the Fashion-MNIST quick-start pair (resnet20 teacher, half-width resnet8 student) with
# 5 transforms x 5 distances x 3 weights x 2 temperatures = 150 distillers, every one
# trained on the proxy below with seeds 0, 1 and 2 by tools/analysis/build_tabular_benchmark.py.
# The table, kdzoo/benchmarks/data/fmnist_kd_table_seed{0,1,2}.csv (averaged on load),
# is keyed by the parameter labels of this
# space, so tools/analysis/replay_search.py can replay any searcher against it without
# training. It is also an ordinary search config:
#   python tools/search.py configs/search/tabular_fmnist_space.py \
#       --cfg-options model.teacher_checkpoint=work_dirs/tabular_fmnist/teacher/epoch_1.pth
_base_ = ['../fashion_mnist/kd_fmnist.py']
search = dict(
    searcher=dict(type='mcts', exploration=0.5, reward='metric'),
    n_trials=60,
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=dict(terms=[
        dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
             transform_slots=[['no', 'softmax_C', 'norm_C', 'tanh', 'bn']],
             distance=['kl', 'l2', 'cosine', 'pearson', 'soft_ce'],
             weight=[0.5, 1.0, 5.0],
             tau=[1.0, 4.0]),
    ]),
    # The proxy of every table row: 2000 training images, 2 epochs, validation once at the
    # end on 2000 images held out of the training split, no data-loading workers (one CPU
    # core). (The shipped v1 tables, kdzoo/benchmarks/data, were built before the split
    # existed and validated on the first 2000 test images.)
    validation=dict(val_size=2000, seed=0, stratified=True),
    proxy=dict(train_indices=2000, max_epochs=2, val_interval=2,
               cfg_options={
                   'train_dataloader.num_workers': 0,
                   'train_dataloader.persistent_workers': False,
                   'val_dataloader.num_workers': 0,
                   'val_dataloader.persistent_workers': False,
               }),
)
