# KD with logit standardisation (Sun et al. 2024): z-score both logits, then KD at base
# temperature 2; KD weight 9, CE weight 0.1 (the official code: --logit-stand --base-temp 2
# --kd-weight 9 on mdistiller's KD config). The z-score erases the term's division by tau,
# so the temperature goes into the transform and tau=2 only gives the tau^2 factor.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', transforms=[
            dict(type='standardize', t=2.0)], distance='kl', tau=2.0, weight=9.0,
             name='kd_ls'),
    ])
