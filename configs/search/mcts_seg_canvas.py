# Auto-KD's Monte Carlo tree search on a dense task: distillers for the canvas
# segmentation pair (PSPNet-R18 w32 teacher -> w16 student, configs/segmentation/canvas/),
# reward mIoU from mmseg's IoUMetric on a validation split carved from the training
# canvases; the best trial is tested once on the test canvases at the end.
#   python tools/search.py configs/search/mcts_seg_canvas.py \
#       --cfg-options model.teacher_checkpoint=work_dirs/canvas_seg_teacher/iter_2000.pth
# One vocabulary across tasks: the same transforms and distances as the classification
# searches, on the decode head's logits (rank 4) and its final features.
_base_ = ['../segmentation/canvas/_kd_base.py']
search = dict(
    # rave_k=0: plain UCT, as in the run measured in docs/segmentation.md (before RAVE
    # became the default); drop it to search with RAVE
    searcher=dict(type='mcts', exploration=0.5, reward='metric', rave_k=0.0),
    n_trials=8,
    seed=0,
    metric='mIoU',
    direction='maximize',
    space=dict(terms=[
        dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg', input_rank=4,
             name='logits',
             transform_slots=[['channel_dist', 'pixel_logits', 'no']],
             distance=['kl', 'mse', 'cosine'],
             weight=[1.0, 3.0],
             tau=[1.0, 4.0]),
    ]),
    # 300 of the student's 1000 iterations on 800 training canvases; the validation split
    # (search.validation's default: 10% of the training canvases) scores each trial.
    proxy=dict(train_indices=800, max_iters=300, val_interval=300,
               cfg_options={'param_scheduler.0.end': 300,
                            'train_dataloader.num_workers': 0,
                            'train_dataloader.persistent_workers': False,
                            'val_dataloader.num_workers': 0,
                            'val_dataloader.persistent_workers': False,
                            'default_hooks.checkpoint.interval': 300,
                            'custom_hooks': []}),
)
