# KDEP's teacher on Fashion-MNIST: resnet20 trained with labels on the upstream split (all
# training images except the 1000 held out for the downstream task), the analogue of an
# ImageNet-supervised teacher. KDEP then distils it on the same images without labels.
_base_ = ['../fashion_mnist/teacher_fmnist.py']
train_dataloader = dict(dataset=dict(
    _delete_=True, type='HeldOutSplit', part='train', val_size=1000, seed=0, stratified=True,
    dataset=dict(type={{_base_.dataset_type}}, split='train', data_root={{_base_.data_root}},
                 pipeline={{_base_.train_pipeline}})))
