# CRD (Tian et al. 2020): NCE between 128-d embeddings of the pooled features with a memory
# bank per side (16384 other-class negatives, T 0.07, momentum 0.5); weight 0.8, CE weight 1
# (RepDistiller / mdistiller). The memory is indexed by each sample's data-set index, so the
# train pipeline packs 'sample_idx' into the batch.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.pool', teacher='backbone.pool', weight=0.8, name='crd',
             distance=dict(type='crd', in_dim=256, feat_dim=128, num_data=50000,
                           nce_k=16384, nce_t=0.07, momentum=0.5, negatives='other_class')),
    ])
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='RandomCropPad', size=32, padding=4),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs', meta_keys=('sample_idx', )),
]))
