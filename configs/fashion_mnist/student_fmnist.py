# The quick-start student, trained alone: resnet8 at half width (20k parameters) on a
# 10k-image subset, 10 epochs (KD matters most when the student sees little data; the
# teacher saw all of it).
_base_ = ['../_base_/datasets/fashion_mnist.py', '../_base_/schedules/fmnist_short.py',
          '../_base_/default_runtime.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet8', num_classes=10, in_channels=1, width_mult=0.5),
             data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(dataset=dict(indices=10000))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=10, eta_min=0.0)]
train_cfg = dict(max_epochs=10)
