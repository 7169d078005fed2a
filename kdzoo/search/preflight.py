"""Pre-flight of a search: before trial 0, one candidate's config is built and run on one
training batch, in a child process, so that a bad teacher checkpoint, data root, module
path, shape or connector fails once with its message instead of failing every trial.

``python -m kdzoo.search.preflight CONFIG WORK_DIR`` builds MMEngine's Runner from the
config (data loader, model, teacher and its checkpoint), takes one batch and computes the
training losses without an optimizer step; it exits 0, or 1 with the error on its last
line.
"""
import math
import sys


def check(config: str, work_dir: str) -> None:
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from kdzoo.teaching import apply_teaching
    from kdzoo.utils import register_all_modules
    register_all_modules()
    cfg = apply_teaching(Config.fromfile(config))
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.train()
    batch = next(iter(runner.train_dataloader))
    with torch.no_grad():
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
    for key, value in losses.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        total = sum(float(v.detach().float().sum()) for v in values)
        if not math.isfinite(total):
            raise ValueError(f'the first batch gives a non-finite {key} ({total})')


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        check(argv[0], argv[1])
    except Exception as err:  # the parent reads the last line
        import traceback
        traceback.print_exc()
        print(f'PREFLIGHT FAILED: {type(err).__name__}: {err}'.replace('\n', ' '), flush=True)
        return 1
    print('PREFLIGHT OK', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
