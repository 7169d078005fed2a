# ReviewKD (Chen et al. 2021): the student's features from the pooled vector up to stage 1
# pass through a chain of attention-based fusion (ABF) connectors, each level matched to the
# teacher's pre-activation feature of the same stage with HCL (weight 5 for this pair in
# mdistiller, 20-epoch linear warm-up); CE weight 1. The terms must stay in level order.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student=student, teacher=teacher, distance=dict(type='hcl', warmup=20),
             weight=5.0, name=f'review{level}',
             connector=dict(type='ABFConnector', in_channels=c, out_channels=c,
                            mid_channels=256, level=level, chain='review'))
        for level, (student, teacher, c) in enumerate((
            ('backbone.pool', 'backbone.pool', 256),
            ('backbone.layer3', 'backbone.layer3.4.preact', 256),
            ('backbone.layer2', 'backbone.layer2.4.preact', 128),
            ('backbone.layer1', 'backbone.layer1.4.preact', 64)))
    ])
