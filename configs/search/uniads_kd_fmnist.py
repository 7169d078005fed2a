# UniADS as the paper combines it: successive halving whose first-rung candidates come from
# NSGA-II, on two objectives (accuracy, student parameters), each rung keeping its survivors
# by non-dominated sorting + crowding distance, under a parameter budget (a constraint; or
# budget_mode='penalty' for the paper's |Params - C| objective). 16 candidates x 1 epoch
# -> 8 x 2 -> 4 x 4 epochs, survivors resumed from their checkpoints.
# python tools/search.py configs/search/uniads_kd_fmnist.py \
#     --cfg-options model.teacher_checkpoint=work_dirs/quickstart/teacher/epoch_3.pth
_base_ = ['./nsga2_kd_fmnist.py']
search = dict(
    searcher=dict(_delete_=True, type='uniads', n_candidates=16, eta=2, min_budget=1,
                  max_budget=4, population_size=8, param_budget=50000,
                  budget_mode='constraint'),
    n_trials=16,
    proxy=dict(train_indices=2000,
               suppression=dict(window=10, explode_factor=10.0, patience=40)),
)
