# KDEP pre-training (He et al., CVPR 2022) on Fashion-MNIST: the student (resnet8 at half
# width, 32-d penultimate feature) learns the teacher's (resnet20, 64-d) pooled pre-ReLU
# penultimate feature on unlabeled images, with no task loss. The teacher side is aligned
# without learnable parameters: a centred SVD projection onto its top-32 directions,
# fitted over 4096 training images before training (KDEPFitHook), then power-temperature
# scaling PTS(f) = sign(f) |f / T|^(1/n). The student-only checkpoints
# (student_latest.pth) are what configs/kdep/finetune_fmnist_1k.py fine-tunes.
_base_ = ['../_base_/datasets/fashion_mnist.py', '../_base_/schedules/fmnist_short.py',
          '../_base_/default_runtime.py']
custom_imports = dict(imports=['kdzoo.engine.kdep_hooks'], allow_failed_imports=False)

student = dict(type='ImageClassifier',
               backbone=dict(type='resnet8', num_classes=10, in_channels=1, width_mult=0.5),
               data_preprocessor={{_base_.data_preprocessor}})
model = dict(
    type='Distiller',
    student=student,
    teacher='configs/kdep/teacher_fmnist_upstream.py',
    teacher_checkpoint='work_dirs/kdep_fmnist/teacher/epoch_2.pth',
    student_loss_weight=0.0,  # pre-training: no labels, no task loss
    distill_terms=[
        # The pooled feature before the last ReLU (KDEP takes it pre-ReLU): the residual
        # sum of the last block (its `preact` hook point), average-pooled by `gap`.
        # (`backbone.layer3.0.act2:input` records the same map; `backbone.fc:input` is the
        # pooled post-ReLU feature.)
        dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
             transforms=['gap', dict(type='svd'), dict(type='pts', T=0.1, n=3.0)],
             distance='l2', weight=20.0, name='kdep'),
    ])

# Unlabeled pre-training images: the upstream split (everything but the 1000 images of the
# downstream task), labels dropped.
train_dataloader = dict(dataset=dict(
    _delete_=True, type='UnlabeledDataset',
    dataset=dict(type='HeldOutSplit', part='train', val_size=1000, seed=0, stratified=True,
                 dataset=dict(type={{_base_.dataset_type}}, split='train',
                              data_root={{_base_.data_root}},
                              pipeline={{_base_.train_pipeline}}))))
# No labels, so nothing to validate: the downstream fine-tuning measures the result.
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(save_best=None))
custom_hooks = [
    dict(type='StudentCheckpointHook', interval=1),
    # The SVD basis (and SN / SM statistics) from a pass over 4096 training images before
    # training; the same on every rank of a distributed run.
    dict(type='KDEPFitHook', num_samples=4096, batch_size=256, seed=0),
]
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=10, eta_min=0.0)]
train_cfg = dict(max_epochs=10, val_interval=1)
