# KDEP with the SVD alignment alone (no transformation module): the baseline of the SN /
# SM / PTS ablation.
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap', dict(type='svd')], distance='l2', weight=20.0, name='kdep')])
