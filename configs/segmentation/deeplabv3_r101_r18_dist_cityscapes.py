# DIST (Huang et al., NeurIPS 2022) on pixels, DeepLabV3-R101 -> R18 on Cityscapes
# (mmseg's 80k protocol): inter- and intra-class Pearson relations of the per-pixel class
# distributions (every pixel a row of 19 logits), beta = gamma = 1, tau 1, plus the
# student's own losses. Teacher checkpoint as in deeplabv3_r101_r18_cwd_cityscapes.py.
_base_ = ['./deeplabv3_r101_r18_cwd_cityscapes.py']
model = dict(distill_terms=[
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['pixel_logits'], distance=dict(type='dist', beta=1.0, gamma=1.0),
         tau=1.0, weight=1.0, name='dist'),
])
