# resnet32x4 on CIFAR-100: the usual teacher of resnet8x4.
_base_ = ['../_base_/datasets/cifar100.py', '../_base_/schedules/cifar100_240e.py',
          '../_base_/default_runtime.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet32x4', num_classes=100),
             data_preprocessor={{_base_.data_preprocessor}})
