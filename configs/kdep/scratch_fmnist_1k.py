# The downstream task of finetune_fmnist_1k.py from a random initialisation: the
# no-pre-training baseline (same student, labels, schedule and evaluation).
_base_ = ['./finetune_fmnist_1k.py']
model = dict(init_cfg=None)
