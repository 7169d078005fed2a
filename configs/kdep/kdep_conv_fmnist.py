# KDEP's baseline with a learnable connector: a 1x1 convolution (no BN) maps the student's
# 32 channels to the teacher's 64 before pooling, i.e. a linear map of the pooled feature;
# no alignment of the teacher. KDEP reports that it makes the learning indirect and hurts
# transfer. The connector is trained with the student and dropped with the student-only
# checkpoint.
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap'], distance='l2', weight=20.0, name='kdep',
         connector=dict(type='ConvConnector', in_channels=32, out_channels=64, norm=False))])
# No stateful transform to fit.
custom_hooks = [dict(type='StudentCheckpointHook', interval=1)]
