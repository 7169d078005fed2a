# A pool teacher: resnet32x4 on the 45000 training images outside the dev split, the standard
# 240-epoch schedule. Train it into work_dirs/dynakd_cifar100/teachers/resnet32x4.
_base_ = ['./split.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet32x4', num_classes=100),
             data_preprocessor={{_base_.data_preprocessor}})
