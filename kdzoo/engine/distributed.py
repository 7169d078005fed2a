"""Distributed training on CPU-only machines (gloo), which MMEngine 0.10.7's launcher lacks.

MMEngine's ``pytorch`` launcher always calls ``torch.cuda.set_device`` and wraps the model
with ``device_ids=[LOCAL_RANK]``; both fail without a GPU. :func:`setup_cpu_distributed`
initialises the gloo process group itself (MMEngine then skips its own initialisation) and
selects :class:`CPUDistributedDataParallel`, which drops the device ids on CPU.
"""
import logging
import os
import sys

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel

from kdzoo.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also works on CPU (no ``device_ids`` there)."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_cpu_distributed(cfg) -> None:
    """With a launcher but no GPU, start gloo and use the CPU-capable DDP wrapper."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher {cfg.launcher!r} needs GPUs; on CPU use '
                           f'tools/dist_train.sh (launcher "pytorch")')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper['type'] = 'kdzoo.CPUDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper


def teardown_distributed(finished: bool = False) -> None:
    """Destroy the process group at exit; gloo aborts the process when it is left alive.
    ``finished``: the run ended normally on every rank, so they first wait for each other
    (one rank tearing gloo down while another still saves can abort it); after a failure
    the other ranks may be gone, so nobody waits."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    if finished and torch_dist.get_world_size() > 1:
        torch_dist.barrier()
        # Every rank is done and its files are written. Leave without running C++
        # destructors: gloo's threads at interpreter exit intermittently abort a finished
        # process ("terminate called without an active exception", exit -6), which makes
        # torchrun report a successful run as failed.
        logging.shutdown()  # flush the log files
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    torch_dist.destroy_process_group()
