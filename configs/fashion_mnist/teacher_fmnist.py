# The quick-start teacher: resnet20 on all of Fashion-MNIST's training set.
_base_ = ['../_base_/datasets/fashion_mnist.py', '../_base_/schedules/fmnist_short.py',
          '../_base_/default_runtime.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet20', num_classes=10, in_channels=1),
             data_preprocessor={{_base_.data_preprocessor}})
