# Auto-KD's Monte Carlo tree search over logit distillers for the Fashion-MNIST
# quick-start pair (resnet20 teacher, resnet8 student), plus the student's width (UniADS).
# python tools/search.py configs/search/mcts_kd_fmnist.py \
#     --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['../fashion_mnist/kd_fmnist.py']
search = dict(
    searcher=dict(type='mcts', exploration=0.5, reward='metric'),
    n_trials=16,
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=dict(
        # One term template; its slots are chosen per trial (decision order: transform
        # slots -> distance -> weight -> tau -> student knobs).
        terms=[
            dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                 transform_slots=[['no', 'softmax_C', 'norm_C', 'standardize'],
                                  ['no', 'tanh']],
                 distance=['kl', 'l2', 'cosine', 'pearson'],
                 weight=[0.5, 1.0, 5.0],
                 tau=[1.0, 4.0]),
        ],
        # Applied to model.student.backbone.
        student=dict(width_mult=[0.5, 1.0]),
    ),
    # Cheap stand-in for the full training (Auto-KD's proxy settings).
    proxy=dict(train_indices=2000, max_epochs=2),
)
