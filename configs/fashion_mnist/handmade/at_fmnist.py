# AT (Zagoruyko & Komodakis, ICLR 2017) on the Fashion-MNIST pair: L2-normalised spatial
# attention maps at the three stages, beta 1000 with AT's 1/2: weight 500 per stage.
_base_ = ['./_distiller.py']
model = dict(distill_terms=[
    dict(student=f'backbone.layer{i}', teacher=f'backbone.layer{i}', transforms=['satt'],
         distance='l2', weight=500.0, name=f'at{i}') for i in (1, 2, 3)
])
