# The pool's teacher assistant: resnet8 (full width, 78k parameters) distilled from the
# resnet32 teacher on the teachers' 20000 images, 3 epochs. As a pool member this config
# gives its student (a distiller config as a teacher is its student), with the distiller
# checkpoint (its student.* weights are taken).
_base_ = ['./split.py']
model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier',
                 backbone=dict(type='resnet8', num_classes=10, in_channels=1),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher='configs/dynakd/fmnist/teacher_resnet32.py',
    teacher_checkpoint='work_dirs/dynakd_fmnist/teachers/resnet32/epoch_3.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
train_dataloader = dict(dataset=dict(train_size=20000))
