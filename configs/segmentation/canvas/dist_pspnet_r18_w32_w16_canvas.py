# DIST (Huang et al., NeurIPS 2022) on pixels: the inter- and intra-class Pearson relations
# over the per-pixel class distributions (each pixel a row, pixel_logits), beta = gamma = 1,
# tau 1, weight 1 (DIST's classification defaults), plus the student's own losses.
_base_ = ['./_kd_base.py']
model = dict(distill_terms=[
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['pixel_logits'], distance=dict(type='dist', beta=1.0, gamma=1.0),
         tau=1.0, weight=1.0, name='dist'),
])
