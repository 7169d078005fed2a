# FitNets (Romero et al., ICLR 2015) on the Fashion-MNIST pair: the student's middle stage
# (16 channels) regresses the teacher's (32) through a 1x1 conv connector, MSE weight 100
# (mdistiller's CIFAR-100 setting).
_base_ = ['./_distiller.py']
model = dict(distill_terms=[
    dict(student='backbone.layer2', teacher='backbone.layer2', distance='l2', weight=100.0,
         connector=dict(type='ConvConnector', in_channels=16, out_channels=32)),
])
