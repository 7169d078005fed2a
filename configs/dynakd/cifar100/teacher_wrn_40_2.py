# A pool teacher: wrn_40_2 on the 45000 training images outside the dev split, the standard
# 240-epoch schedule. Train it into work_dirs/dynakd_cifar100/teachers/wrn_40_2.
_base_ = ['./split.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='wrn_40_2', num_classes=100),
             data_preprocessor={{_base_.data_preprocessor}})
