"""Second-order optimizers from ``pytorch-optimizer``, registered in MMEngine's optimizer
registry (kdzoo's ``OPTIMIZERS``), for FunMatch's recipe ("Shampoo speeds up")::

    optim_wrapper = dict(optimizer=dict(type='ScalableShampoo', lr=1e-3, weight_decay=1e-4,
                                        decoupled_weight_decay=True),
                         clip_grad=dict(max_norm=1.0))

``ScalableShampoo`` is Google's scalable Shampoo (Anil et al. 2020), the optimizer of
FunMatch's experiments; ``Shampoo`` the original (Gupta et al. 2018). MMEngine's
``OptimWrapper`` builds them from the config like any torch optimizer.
"""
from kdzoo.registry import OPTIMIZERS

try:
    import pytorch_optimizer
except ImportError:  # pragma: no cover - a runtime requirement; the registry names it
    pytorch_optimizer = None

SHAMPOO_OPTIMIZERS = ('Shampoo', 'ScalableShampoo')

if pytorch_optimizer is not None:
    for _name in SHAMPOO_OPTIMIZERS:
        if OPTIMIZERS.get(_name) is None:
            OPTIMIZERS.register_module(name=_name, module=getattr(pytorch_optimizer, _name))

__all__ = ['SHAMPOO_OPTIMIZERS']
