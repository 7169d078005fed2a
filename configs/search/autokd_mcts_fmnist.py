# Auto-KD as the paper scores it: Monte Carlo tree search whose reward is
# R = 1 - (CE + (1 - CKA)) on the validation data (the student's cross-entropy and the linear
# CKA between the student's and the teacher's pooled features), measured after every
# validation by AutoKDRewardHook. The search space is mcts_kd_fmnist.py's.
# python tools/search.py configs/search/autokd_mcts_fmnist.py \
#     --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['./mcts_kd_fmnist.py']
search = dict(
    searcher=dict(type='mcts', exploration=0.5, reward='autokd'),
    proxy=dict(train_indices=2000, max_epochs=2,
               autokd_reward=dict(student='backbone.pool', teacher='backbone.pool',
                                  max_samples=2000)),
)
