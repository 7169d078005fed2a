# SKD's pair-wise term alone (the ablation of skd_pspnet_r18_w32_w16_canvas.py without the
# pixel-wise KL): similarity of all position pairs of the decode head's final features,
# patches of half the map side, weight 0.5, plus the student's own losses.
_base_ = ['./_kd_base.py']
model = dict(distill_terms=[
    dict(student='decode_head.bottleneck', teacher='decode_head.bottleneck',
         transforms=[dict(type='pixel_sim', scale=0.5, detach_norm=True)], distance='mse',
         weight=0.5, name='pair'),
])
