# KDEP, interpolation: the teacher's 64 pooled channels interpolated (nearest, as KDEP's
# code) to the student's 32.
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap', dict(type='interp')], distance='l2', weight=20.0, name='kdep')])
