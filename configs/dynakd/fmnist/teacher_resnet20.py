# A pool teacher: resnet20 (1 channel, 10 classes) on 20000 training images outside the dev
# split, 3 epochs (SGD 0.1, cosine). tools/analysis/dynakd_fmnist.py trains it into
# work_dirs/dynakd_fmnist/teachers/resnet20.
_base_ = ['./split.py']
model = dict(type='ImageClassifier',
             backbone=dict(type='resnet20', num_classes=10, in_channels=1),
             data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(dataset=dict(train_size=20000))
