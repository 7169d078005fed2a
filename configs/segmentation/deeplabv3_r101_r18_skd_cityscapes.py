# SKD (Liu et al., CVPR 2019) without the adversarial term, DeepLabV3-R101 -> R18 on
# Cityscapes (mmseg's 80k protocol): pair-wise similarity of the ASPP head's final features
# (patches of half the map side, weight 0.5) and pixel-wise KD of the logits (KL per
# pixel, tau 1, weight 10), the official code's lambda_pa and lambda_pi. The features
# differ in width (512 vs 128 channels); the pair-wise relation needs no connector.
# CIRKD's codebase reports 75.42 for SKD (DeepLabV3-R18, its own recipe; see
# docs/segmentation.md). Teacher checkpoint as in deeplabv3_r101_r18_cwd_cityscapes.py.
_base_ = ['./deeplabv3_r101_r18_cwd_cityscapes.py']
model = dict(distill_terms=[
    dict(student='decode_head.bottleneck', teacher='decode_head.bottleneck',
         transforms=[dict(type='pixel_sim', scale=0.5, detach_norm=True)], distance='mse',
         weight=0.5, name='pair'),
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['pixel_logits'], distance='kl', tau=1.0, weight=10.0, name='pixel'),
])
