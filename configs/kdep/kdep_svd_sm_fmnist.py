# KDEP, SVD + SM: every projected teacher channel rescaled to the max channel std of the
# teacher features before the SVD (fitted by KDEPFitHook, then fixed: momentum=0).
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap', dict(type='svd'), dict(type='sm', momentum=0.0)],
         distance='l2', weight=20.0, name='kdep')])
