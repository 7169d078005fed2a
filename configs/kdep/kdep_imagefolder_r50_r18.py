# KDEP at ImageNet scale, as in the paper: a timm ResNet-50 teacher distilled into a
# torchvision ResNet-18 on a folder of unlabeled images (any layout: class folders are not
# needed), SVD (2048 -> 512) + PTS, no task loss. Put the images under
# data/unlabeled/train/ and the teacher's ImageNet weights in a local file (nothing is
# downloaded); fine-tune the resulting student_latest.pth downstream with a
# `FineTunePretrained` init_cfg (see configs/kdep/finetune_fmnist_1k.py).
#
# Hook points: both networks' pooled features are taken before the last ReLU and pooled by
# `gap`. timm's Bottleneck has its own final activation module (`act3`), whose input is the
# residual sum; torchvision's BasicBlock calls one in-place `relu` twice, and the recorder
# keeps the input of its last call, the residual sum. (`backbone.fc:input` is the pooled
# post-ReLU feature of either.)
_base_ = ['../_base_/datasets/imagenet.py', '../_base_/schedules/imagenet_100e.py',
          '../_base_/default_runtime.py']
custom_imports = dict(imports=['kdzoo.engine.kdep_hooks'], allow_failed_imports=False)

model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier',
                 backbone=dict(type='TorchvisionModel', name='resnet18', num_classes=1000),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher=dict(type='TimmTeacher', model_name='resnet50', num_classes=1000,
                 pretrained_path='checkpoints/resnet50_imagenet.pth'),
    student_loss_weight=0.0,
    distill_terms=[
        dict(student='backbone.layer4.1.relu:input', teacher='backbone.layer4.2.act3:input',
             transforms=['gap', dict(type='svd'), dict(type='pts', T=0.1, n=3.0)],
             distance='l2', weight=20.0, name='kdep'),
    ])
train_dataloader = dict(dataset=dict(_delete_=True, type='ImageFolder',
                                     data_root='data/unlabeled', split='train',
                                     with_label=False,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(save_best=None))
custom_hooks = [
    dict(type='StudentCheckpointHook', interval=1),
    # KDEP's code fits the SVD on a 10% ImageNet subset (128k images); 16384 images pin the
    # 2048-d covariance well at a fraction of the cost.
    dict(type='KDEPFitHook', num_samples=16384, batch_size=256, seed=0),
]
