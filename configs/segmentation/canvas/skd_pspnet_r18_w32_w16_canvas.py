# SKD (Liu et al., CVPR 2019) without its adversarial term: the pair-wise similarity of the
# decode head's final features (patches of half the map side, weight 0.5) and pixel-wise KD
# of the logits (KL per pixel, tau 1, weight 10), the official code's lambda_pa and
# lambda_pi; plus the student's own losses. The features differ in width (64 vs 128
# channels): the pair-wise relation is position x position, so no connector is needed.
_base_ = ['./_kd_base.py']
model = dict(distill_terms=[
    dict(student='decode_head.bottleneck', teacher='decode_head.bottleneck',
         transforms=[dict(type='pixel_sim', scale=0.5, detach_norm=True)], distance='mse',
         weight=0.5, name='pair'),
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['pixel_logits'], distance='kl', tau=1.0, weight=10.0, name='pixel'),
])
