# KDEP, channel selection: the teacher's first 32 of 64 pooled channels (no parameters).
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap', dict(type='channel_select')], distance='l2', weight=20.0,
         name='kdep')])
