# The pool of pool_mean.py, mode='sample': one member per step from Cat(theta) (uniform
# unless pool.theta is given), its loss weighted by theta_k.
_base_ = ['./pool_mean.py']
model = dict(pool=dict(mode='sample', theta=None, scale='prob'))
