default_scope = 'kdzoo'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # kdzoo's (tools/train.py adds them to configs that lack them; `<key>=None` turns one
    # off): stop at the first non-finite loss, writing WORK_DIR/diverged.json ...
    finite_loss=dict(type='kdzoo.FiniteLossHook'),
    # ... and seed the main process per iteration, so a resumed run draws what an
    # uninterrupted one drew (the data side: SeededSampler in the dataset configs).
    step_seed=dict(type='kdzoo.StepSeedHook'),
)
# Student-only checkpoints for distillers (a no-op for plain models).
custom_hooks = [dict(type='StudentCheckpointHook', interval=1)]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
# A fixed seed: augmentation is seeded per (seed, epoch, sample) and the main process per
# (seed, iteration), so runs repeat and a resumed run ends with the uninterrupted run's weights.
randomness = dict(seed=0, deterministic=False)
