# CWD (Shu et al., ICCV 2021) on the canvas set: KL between the per-channel spatial
# distributions of the final logits, tau 4, weight 3 (CWD's Cityscapes setting), plus the
# student's own losses.
_base_ = ['./_kd_base.py']
model = dict(distill_terms=[
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['channel_dist'], distance='kl', tau=4.0, weight=3.0, name='cwd'),
])
