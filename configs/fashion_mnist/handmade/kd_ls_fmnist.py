# KD with logit standardisation (Sun et al., CVPR 2024) on the Fashion-MNIST pair:
# z-scored logits, base temperature 2, KD weight 9, CE weight 0.1 (the official code's
# CIFAR-100 flags; see configs/ls/kd_ls_resnet32x4_resnet8x4_cifar100.py).
_base_ = ['./_distiller.py']
model = dict(
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc',
             transforms=[dict(type='standardize', t=2.0)], distance='kl', tau=2.0,
             weight=9.0, name='kd_ls'),
    ])
