# The quick-start KD student with sparse training (Auto-KD's acceleration 2): random masks
# zero 50 % of the student's convolution weights, growing on the cubic schedule over the
# first half of the run (the stem and the classifier stay dense). Other sparsities:
# --cfg-options custom_hooks.1.sparsity=0.8
_base_ = ['./kd_fmnist.py']
custom_hooks = [
    dict(type='StudentCheckpointHook', interval=1),
    dict(type='SparseTrainingHook', sparsity=0.5, start=0.0, end=0.5, interval=10,
         exclude=['backbone.conv1', 'backbone.fc']),
]
