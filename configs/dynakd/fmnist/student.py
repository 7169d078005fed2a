# The DynaKD student trained alone: resnet8 at half width (20k parameters) on the 4000
# student images, 6 epochs of batch 64 (SGD 0.1, cosine); validation on the dev split.
_base_ = ['./split.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet8', num_classes=10, in_channels=1, width_mult=0.5),
             data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=64)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=6, eta_min=0.0)]
train_cfg = dict(max_epochs=6)
