# The pool of pool_mean.py, mode='sum': one KD loss per member (loss_kd0_<member>), summed.
_base_ = ['./pool_mean.py']
model = dict(pool=dict(mode='sum'))
