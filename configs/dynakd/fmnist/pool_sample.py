# The pool of pool_mean.py, mode='sample' (DynaKD's w-step): one member per step drawn from
# Cat(theta), the only one that runs; its loss weighted by theta_k (the paper's objective).
# theta=None is uniform; tools/dynakd.py writes learned candidates here as pool.theta.
_base_ = ['./pool_mean.py']
model = dict(pool=dict(mode='sample', theta=None, scale='prob'))
