# PKT (Passalis & Tefas 2018): KL between the cosine-similarity probabilities of the pooled
# embeddings; weight 30000 (RepDistiller / mdistiller), CE weight 1.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.pool', teacher='backbone.pool', distance='pkt',
             weight=30000.0, name='pkt'),
    ])
