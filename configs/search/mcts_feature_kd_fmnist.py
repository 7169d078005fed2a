# A two-term Auto-KD space generated from the registries: logits (rank 2) and the last
# stage's feature maps (rank 4; a 1x1 ConvConnector maps the student's 32 channels to the
# teacher's 64). Three transform slots each, every one with the no-op 'no'; chains that
# cannot take the input rank are never proposed (the space enumerates valid ones only).
_base_ = ['./mcts_kd_fmnist.py']
search = dict(
    n_trials=64,
    space=dict(
        _delete_=True,
        terms=[
            dict(name='logits', student='backbone.fc', teacher='backbone.fc', input_rank=2,
                 transform_slots=dict(
                     generate=dict(family='global', rank=2, parametric=False,
                                   stochastic=False),
                     num_slots=1),
                 distance=['kl', 'pearson', 'l2'],
                 weight=[0.5, 1.0], tau=[1.0, 4.0]),
            dict(name='feat', student='backbone.layer3', teacher='backbone.layer3',
                 input_rank=4,
                 connector=dict(type='ConvConnector', in_channels=32, out_channels=64),
                 transform_slots=dict(
                     generate=dict(family=['global', 'inter'], rank=4, parametric=False,
                                   stochastic=False),
                     # pixel_sim (SKD's position-pair relation) belongs to the dense
                     # tasks' spaces (configs/search/mcts_seg_canvas.py)
                     exclude=['bn', 'pixel_sim'],
                     num_slots=3),
                 distance=['l2', 'cosine', 'pearson', 'kl'],
                 weight=[1.0, 5.0, 25.0], tau=1.0),
        ],
    ),
)
