# DKD with logit standardisation (Sun et al. 2024), as the official tools/train.py runs
# '--logit-stand --base-temp 2 --kd-weight 9' on mdistiller's DKD config: alpha = 1 * 9 and
# beta = alpha * 9 = 81 (the script scales the already-scaled alpha), and tau stays DKD's 4
# (--base-temp sets KD's temperature, which DKD does not read); 20-epoch warm-up, CE weight 1.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', transforms=[
            dict(type='standardize', t=4.0)], tau=4.0, weight=1.0, name='dkd_ls',
             distance=dict(type='dkd', alpha=9.0, beta=81.0, warmup=20)),
    ])
