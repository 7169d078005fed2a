# DIST (Huang et al., NeurIPS 2022) on the Fashion-MNIST pair: inter- and intra-class
# Pearson relations, beta = gamma = 2, tau 4 (the paper's CIFAR-100 setting).
_base_ = ['./_distiller.py']
model = dict(distill_terms=[
    dict(student='backbone.fc', teacher='backbone.fc', tau=4.0, weight=1.0,
         distance=dict(type='dist', beta=2.0, gamma=2.0)),
])
