# FunMatch on Fashion-MNIST: consistent teaching (one inception crop fed to teacher and
# student) with aggressive mixup, a KL-only loss at tau=1, AdamW-style decoupled weight
# decay, cosine decay without restarts and gradient clipping at global norm 1.0 (the
# card's recipe). Other modes: --cfg-options teaching.mode=fix/rs (or fix/cc, fix/ic_ens,
# ind/rc, ind/ic, same/rc, same/ic). Patience: --cfg-options train_cfg.max_epochs=N
# param_scheduler.0.T_max=N. Shampoo: optim_wrapper.optimizer.type=ScalableShampoo.
_base_ = ['../fashion_mnist/student_fmnist.py']

teaching = dict(
    mode='funmatch',
    size=28,            # the student's view
    teacher_size=28,    # a higher-resolution teacher: e.g. 56 (cut from the raw pixels)
    crop_fraction=0.875,         # mild random crop / centre crop: 224 of 256 per side
    inception_scale=(0.25, 1.0),  # 28-px images: the card's (0.08, 1) leaves a few pixels
    mixup_alpha=1.0,    # lam ~ Beta(1, 1): FunMatch's aggressive mixing
    ens_crops=8,        # fix/ic_ens: teacher averaged over 8 fixed inception crops
    store=None,         # a teacher store (tools/build_teacher_store.py): no teacher runs
)

model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/fashion_mnist/teacher_fmnist.py',
    teacher_checkpoint='work_dirs/quickstart/teacher/epoch_3.pth',
    student_loss_weight=0.0,  # function matching: the teacher's outputs only
    distill_terms=[dict(name='kl', student='backbone.fc', teacher='backbone.fc',
                        distance='kl', tau=1.0, weight=1.0)])

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=10, eta_min=0.0)]
train_cfg = dict(max_epochs=10)
