# resnet8x4 on CIFAR-100, trained alone: the plain student config (tools/test.py loads the
# student-only checkpoints of the distillers below with it).
_base_ = ['../_base_/datasets/cifar100.py', '../_base_/schedules/cifar100_240e.py',
          '../_base_/default_runtime.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet8x4', num_classes=100),
             data_preprocessor={{_base_.data_preprocessor}})
