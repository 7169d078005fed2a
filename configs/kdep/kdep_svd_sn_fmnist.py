# KDEP, SVD + SN: every projected teacher channel divided by its std. The statistics are
# fitted with the basis before training (KDEPFitHook) and kept fixed (momentum=0), as the
# precomputed statistics of KDEP's code, so all ranks of a distributed run agree.
_base_ = ['./kdep_svd_pts_fmnist.py']
model = dict(distill_terms=[
    dict(student='backbone.layer3.0.preact', teacher='backbone.layer3.2.preact',
         transforms=['gap', dict(type='svd'), dict(type='sn', momentum=0.0)],
         distance='l2', weight=20.0, name='kdep')])
