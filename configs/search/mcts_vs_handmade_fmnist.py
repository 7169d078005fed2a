# The search of the searched-vs-hand-made comparison (tools/analysis/
# searched_vs_handmade_fmnist.py, docs/search.md): Auto-KD's MCTS over the two-term space
# of mcts_feature_kd_fmnist.py (logits + the last stage's features) for the fixed
# Fashion-MNIST student (resnet8 at half width: no width knob, so every row of the table
# trains the same student). Each trial trains on the full run's 10k images for 2 of its 10
# epochs and is scored on the validation split carved from the training set; the test
# split is read once, by the full runs.
#   python tools/search.py configs/search/mcts_vs_handmade_fmnist.py \
#       --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['./mcts_feature_kd_fmnist.py']
search = dict(
    # rave_k=0: plain UCT, as in the measured comparison (docs/search.md)
    searcher=dict(type='mcts', exploration=0.5, reward='metric', rave_k=0.0),
    n_trials=16,
    proxy=dict(_delete_=True, train_indices=10000, max_epochs=2,
               cfg_options={'train_dataloader.num_workers': 0,
                            'train_dataloader.persistent_workers': False,
                            'val_dataloader.num_workers': 0,
                            'val_dataloader.persistent_workers': False}),
)
