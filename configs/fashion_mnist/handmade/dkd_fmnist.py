# DKD (Zhao et al., CVPR 2022) on the Fashion-MNIST pair: alpha 1, beta 8, tau 4 (the
# paper's CIFAR-100 defaults); its warm-up of 20 of 240 epochs becomes the same twelfth of
# this 10-epoch schedule, 66 of its 790 iterations.
_base_ = ['./_distiller.py']
model = dict(distill_terms=[
    dict(student='backbone.fc', teacher='backbone.fc', tau=4.0, weight=1.0,
         distance=dict(type='dkd', alpha=1.0, beta=8.0, warmup=66, warmup_by='iter')),
])
