# The space of mcts_kd_fmnist.py searched by uniform random choices: the baseline.
_base_ = ['./mcts_kd_fmnist.py']
search = dict(searcher=dict(_delete_=True, type='random'))
