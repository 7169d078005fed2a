# KDEP's downstream step on Fashion-MNIST: the pre-trained student (resnet8 at half width)
# fine-tuned with a fixed budget of 1000 labels (100 per class), the images held out of
# the pre-training split, evaluated on the 10000 test images. Every tensor of the
# pre-trained student-only checkpoint is loaded except the head (backbone.fc), which is
# re-initialised; the log lists what was loaded, re-initialised, missing or mis-shaped.
#
#   python tools/train.py configs/kdep/finetune_fmnist_1k.py \
#       --cfg-options model.init_cfg.checkpoint=work_dirs/kdep_svd_pts_fmnist/student_latest.pth
_base_ = ['../_base_/datasets/fashion_mnist.py', '../_base_/schedules/fmnist_short.py',
          '../_base_/default_runtime.py']
pretrained = 'work_dirs/kdep_svd_pts_fmnist/student_latest.pth'
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet8', num_classes=10, in_channels=1, width_mult=0.5),
             data_preprocessor={{_base_.data_preprocessor}},
             init_cfg=dict(type='FineTunePretrained', checkpoint=pretrained,
                           reinit=['backbone.fc']))
# The labelled downstream split: the 1000 training images the pre-training never saw.
train_dataloader = dict(batch_size=64, dataset=dict(
    _delete_=True, type='HeldOutSplit', part='val', val_size=1000, seed=0, stratified=True,
    dataset=dict(type={{_base_.dataset_type}}, split='train', data_root={{_base_.data_root}},
                 pipeline={{_base_.train_pipeline}})))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=30, eta_min=0.0)]
train_cfg = dict(max_epochs=30, val_interval=1)
