# UniADS: NSGA-II on (accuracy, student parameters) over the distiller and the student's
# width and depth, with a parameter budget as a constraint.
_base_ = ['./mcts_kd_fmnist.py']
search = dict(
    searcher=dict(_delete_=True, type='nsga2', population_size=8, param_budget=50000),
    n_trials=32,
    space=dict(
        terms=[
            dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                 transform_slots=[['no', 'bn', 'tanh', 'norm_C']],
                 distance=['kl', 'l2', 'cosine'],
                 weight=[0.5, 1.0, 5.0, 16.0],
                 tau=[1.0, 4.0, 8.0, 16.0]),
        ],
        # resnet8 on Fashion-MNIST: 5.1k (0.25x) .. 175k (1.0x width, 2x depth) parameters
        student=dict(width_mult=[0.25, 0.5, 0.75, 1.0], depth_mult=[1.0, 2.0]),
    ),
)
