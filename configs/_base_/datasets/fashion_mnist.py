# Fashion-MNIST (28x28 grey, 10 classes): the built-in default data set. The files come
# from Debian's dataset-fashion-mnist package, data/fashion_mnist or torchvision's layout.
dataset_type = 'FashionMNIST'
data_root = None  # search the standard places
num_classes = 10
in_channels = 1

data_preprocessor = dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])

train_pipeline = [
    dict(type='RandomCropPad', size=28, padding=2),
    dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]

train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    # DefaultSampler's order; each sample's augmentation is seeded by (seed, epoch, index)
    sampler=dict(type='SeededSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, split='train', data_root=data_root,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, split='test', data_root=data_root,
                 pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
