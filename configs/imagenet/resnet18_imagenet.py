# torchvision's ResNet-18 on ImageNet, trained alone: the plain student config of the
# ResNet-34 -> ResNet-18 distillers (tools/test.py loads their student-only checkpoints).
_base_ = ['../_base_/datasets/imagenet.py', '../_base_/schedules/imagenet_100e.py',
          '../_base_/default_runtime.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='TorchvisionModel', name='resnet18', num_classes=1000),
             data_preprocessor={{_base_.data_preprocessor}})
