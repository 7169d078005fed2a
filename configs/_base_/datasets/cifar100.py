# CIFAR-100 in torchvision's on-disk layout: data/cifar-100-python/{train,test,meta}.
dataset_type = 'CIFAR100'
data_root = 'data/cifar-100-python'
num_classes = 100
in_channels = 3

data_preprocessor = dict(type='ImgDataPreprocessor',
                         mean=[129.30, 124.07, 112.43], std=[68.17, 65.39, 70.42])

train_pipeline = [
    dict(type='RandomCropPad', size=32, padding=4),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    # DefaultSampler's order; each sample's augmentation is seeded by (seed, epoch, index)
    sampler=dict(type='SeededSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, split='train', data_root=data_root,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, split='test', data_root=data_root,
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
