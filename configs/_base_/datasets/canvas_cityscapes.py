# The canvas segmentation set in Cityscapes' on-disk format, read by mmseg's
# CityscapesDataset and scored by its IoUMetric, unchanged. Write it with
#   python tools/dataset_converters/make_canvas_data.py cityscapes data/canvas_cityscapes \
#       --height 64 --width 64 --items 1 2 --scale 28 56 --train 1000 --val 300
# trainId 0 is the background, trainId k+1 Fashion-MNIST class k; mmseg's Cityscapes class
# accepts only subsets of its own class names, so the first 11 are used (see
# kdzoo/datasets/canvas.py). 'val' holds the test canvases (items of Fashion-MNIST's test
# split), evaluated once at the end of a run; searches carve their validation split from
# 'train' (search.validation).
dataset_type = 'CityscapesDataset'
data_root = 'data/canvas_cityscapes'
num_classes = 11
metainfo = dict(classes=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                         'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky'))
crop_size = (64, 64)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
