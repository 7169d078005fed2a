# FunMatch's ImageNet setting (the card): BiT-M R152x2 teacher at 384 px, BiT ResNet-50
# student at 224 px, the same inception crop fed to both (the teacher's cut from the raw
# image at its own resolution), mixup, KL at tau 1 with no labels, Shampoo-class
# preconditioning or AdamW, cosine decay, gradient clipping at 1.0, batch 4096,
# 1200 epochs (the paper reports 1200-9600). A cluster job:
#   GPUS=64 tools/slurm_train.sh PARTITION funmatch configs/funmatch/funmatch_imagenet_bit.py
# with the teacher's ImageNet weights (nothing is downloaded):
#   --cfg-options model.teacher_checkpoint=checkpoints/bit_m_r152x2_in1k_384.pth
_base_ = ['../_base_/datasets/imagenet.py', '../_base_/default_runtime.py']

teaching = dict(mode='funmatch', size=224, teacher_size=384, crop_fraction=0.875,
                inception_scale=(0.08, 1.0), mixup_alpha=1.0)

model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier',
                 backbone=dict(type='TimmModel', model_name='resnetv2_50x1_bit',
                               num_classes=1000),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher=dict(type='TimmTeacher', model_name='resnetv2_152x2_bit', num_classes=1000),
    teacher_checkpoint='checkpoints/bit_m_r152x2_in1k_384.pth',
    student_loss_weight=0.0,
    distill_terms=[dict(name='kl', student='backbone', teacher='backbone', distance='kl',
                        tau=1.0, weight=1.0)])

train_dataloader = dict(batch_size=64)  # x 64 GPUs = 4096
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=5000),
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=1200, eta_min=0.0)]
train_cfg = dict(by_epoch=True, max_epochs=1200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
