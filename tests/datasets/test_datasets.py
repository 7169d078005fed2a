"""Datasets and pipeline steps, on small data generated in tmp_path."""
import gzip
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip('cv2')
pytest.importorskip('mmcv')

from mmengine.dataset import default_collate  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from kdzoo.datasets import (CIFAR10, CIFAR100, BGR2RGB, FashionMNIST, ImageFolder,  # noqa: E402
                            PackClsInputs, RandomCropPad, RandomResizedCrop, ResizeShorter)
from kdzoo.datasets.cifar import CIFAR100_CLASSES  # noqa: E402
from kdzoo.datasets.fashion_mnist import FASHION_MNIST_CLASSES  # noqa: E402
from kdzoo.registry import DATASETS, TRANSFORMS  # noqa: E402

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


# ----------------------------------------------------------------------------- helpers
def write_idx(path, array, magic, gz):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = np.array([magic] + list(array.shape), dtype='>i4').tobytes()
    opener = gzip.open if gz else open
    with opener(str(path) + ('.gz' if gz else ''), 'wb') as f:
        f.write(header + array.tobytes())


def make_fashion(folder, split='train', n=12, gz=True, seed=0, image_magic=2051,
                 label_magic=2049):
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = 'train' if split == 'train' else 't10k'
    os.makedirs(folder, exist_ok=True)
    write_idx(osp.join(folder, f'{prefix}-images-idx3-ubyte'), images, image_magic, gz)
    write_idx(osp.join(folder, f'{prefix}-labels-idx1-ubyte'), labels, label_magic, gz)
    return images, labels


# ----------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize('gz', [True, False])
def test_fashion_mnist_reads_idx(tmp_path, gz):
    images, labels = make_fashion(tmp_path, 'test', n=12, gz=gz)
    ds = FashionMNIST(split='test', data_root=str(tmp_path))
    assert len(ds) == 12
    assert ds.metainfo['classes'] == FASHION_MNIST_CLASSES
    assert len(ds.metainfo['classes']) == 10
    for i in (0, 5, 11):
        info = ds[i]
        assert info['img'].shape == (28, 28, 1) and info['img'].dtype == np.uint8
        np.testing.assert_array_equal(info['img'][..., 0], images[i])
        assert info['gt_label'] == int(labels[i]) and isinstance(info['gt_label'], int)
    np.testing.assert_array_equal(ds.get_gt_labels(), labels)
    # items are copies: modifying one leaves the dataset unchanged
    ds[0]['img'][:] = 0
    np.testing.assert_array_equal(ds[0]['img'][..., 0], images[0])


def test_fashion_mnist_subset_and_unserialized(tmp_path):
    images, labels = make_fashion(tmp_path, 'train', n=12)
    ds = FashionMNIST(split='train', data_root=str(tmp_path), indices=5)
    assert len(ds) == 5
    np.testing.assert_array_equal(ds[4]['img'][..., 0], images[4])
    ds = FashionMNIST(split='train', data_root=str(tmp_path), indices=[3, 7],
                      serialize_data=False)
    assert len(ds) == 2
    assert ds[1]['gt_label'] == int(labels[7])
    np.testing.assert_array_equal(ds[1]['img'][..., 0], images[7])
    sub = FashionMNIST(split='train', data_root=str(tmp_path)).get_subset([2])
    np.testing.assert_array_equal(sub[0]['img'][..., 0], images[2])


def test_fashion_mnist_torchvision_layout_and_search(tmp_path, monkeypatch):
    images, _ = make_fashion(tmp_path / 'data' / 'FashionMNIST' / 'raw', 'test', n=3, gz=False)
    ds = FashionMNIST(split='test', data_root=str(tmp_path / 'data' / 'FashionMNIST'))
    np.testing.assert_array_equal(ds[2]['img'][..., 0], images[2])
    ds = FashionMNIST(split='test', data_root=str(tmp_path / 'data'))
    assert len(ds) == 3
    # data_root=None: data/fashion_mnist comes before data/FashionMNIST/raw
    monkeypatch.chdir(tmp_path)
    assert len(FashionMNIST(split='test')) == 3
    make_fashion(tmp_path / 'data' / 'fashion_mnist', 'test', n=4)
    assert len(FashionMNIST(split='test')) == 4


def test_fashion_mnist_bad_magic(tmp_path):
    make_fashion(tmp_path, 'train', n=4, image_magic=2049)
    with pytest.raises(ValueError, match='magic'):
        FashionMNIST(split='train', data_root=str(tmp_path))
    make_fashion(tmp_path, 'test', n=4, label_magic=2051)
    with pytest.raises(ValueError, match='magic number 2051, expected 2049'):
        FashionMNIST(split='test', data_root=str(tmp_path))


def test_fashion_mnist_truncated(tmp_path):
    make_fashion(tmp_path, 'train', n=4, gz=False)
    path = tmp_path / 'train-images-idx3-ubyte'
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match='header says'):
        FashionMNIST(split='train', data_root=str(tmp_path))


def test_fashion_mnist_missing(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(split='test', data_root=str(missing))
    msg = str(err.value)
    for folder in (missing, missing / 'raw', missing / 'FashionMNIST' / 'raw'):
        assert str(folder / 't10k-images-idx3-ubyte') in msg
        assert str(folder / 't10k-images-idx3-ubyte.gz') in msg
    assert 'apt-get install dataset-fashion-mnist' in msg
    with pytest.raises(ValueError):
        FashionMNIST(split='val', data_root=str(tmp_path))
    # lazy_init defers the search
    ds = FashionMNIST(split='test', data_root=str(missing), lazy_init=True)
    assert ds.metainfo['classes'][0] == 'T-shirt/top'


def test_fashion_mnist_default_search_lists_all_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('kdzoo.datasets.fashion_mnist.FASHION_MNIST_ROOTS',
                        ('data/fashion_mnist', 'data/FashionMNIST/raw',
                         str(tmp_path / 'usr-share')))
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(split='train')
    msg = str(err.value)
    assert 'data/fashion_mnist/train-images-idx3-ubyte' in msg
    assert 'data/FashionMNIST/raw/train-images-idx3-ubyte.gz' in msg
    assert str(tmp_path / 'usr-share' / 'train-images-idx3-ubyte') in msg


@pytest.mark.skipif(not osp.isdir(DEBIAN_FASHION_MNIST),
                    reason='Debian package dataset-fashion-mnist not installed')
def test_real_fashion_mnist_test_split():
    ds = FashionMNIST(split='test', data_root=DEBIAN_FASHION_MNIST)
    assert len(ds) == 10000
    counts = np.bincount(ds.get_gt_labels(), minlength=10)
    assert counts.tolist() == [1000] * 10
    img = ds[0]['img']
    assert img.shape == (28, 28, 1) and img.dtype == np.uint8 and img.max() > 0
    # the default search finds it too (unless a local copy shadows it)
    if not any(osp.isdir(p) for p in ('data/fashion_mnist', 'data/FashionMNIST/raw')):
        assert len(FashionMNIST(split='test', indices=10)) == 10


# ----------------------------------------------------------------------------- CIFAR
def make_cifar(root, kind, n=20, seed=0):
    """Write pickles like the real archives (bytes keys, (N, 3072) uint8 CHW rows)."""
    rng = np.random.RandomState(seed)
    if kind == 'cifar100':
        folder = osp.join(root, 'cifar-100-python')
        os.makedirs(folder, exist_ok=True)
        out = {}
        for split in ('train', 'test'):
            data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
            fine = rng.randint(0, 100, size=n).tolist()
            entry = {b'filenames': [b'x.png'] * n, b'batch_label': b'b', b'data': data,
                     b'fine_labels': fine, b'coarse_labels': [f // 5 for f in fine]}
            with open(osp.join(folder, split), 'wb') as f:
                pickle.dump(entry, f, protocol=2)
            out[split] = (data, fine)
        with open(osp.join(folder, 'meta'), 'wb') as f:
            pickle.dump({b'fine_label_names': [c.encode() for c in CIFAR100_CLASSES]}, f)
        return folder, out
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    out = {'train': ([], []), 'test': ([], [])}
    per_batch = n // 5
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        split = 'test' if name == 'test_batch' else 'train'
        m = n if split == 'test' else per_batch
        data = rng.randint(0, 256, size=(m, 3072)).astype(np.uint8)
        labels = rng.randint(0, 10, size=m).tolist()
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump({b'data': data, b'labels': labels}, f, protocol=2)
        out[split][0].append(data)
        out[split][1].extend(labels)
    out = {k: (np.concatenate(v[0]), v[1]) for k, v in out.items()}
    return folder, out


def check_cifar_roundtrip(ds, data, labels):
    assert len(ds) == len(data)
    for i in range(len(data)):
        info = ds[i]
        img = info['img']
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert info['gt_label'] == labels[i]
        for r, c, ch in ((0, 0, 0), (5, 17, 1), (31, 30, 2), (12, 3, 0)):
            assert img[r, c, ch] == data[i, ch * 1024 + r * 32 + c]
        np.testing.assert_array_equal(img.transpose(2, 0, 1).reshape(-1), data[i])


def test_cifar100_roundtrip(tmp_path):
    folder, out = make_cifar(tmp_path, 'cifar100', n=20)
    # data_root may be the parent folder or cifar-100-python itself
    for root in (str(tmp_path), folder):
        for split in ('train', 'test'):
            ds = CIFAR100(split=split, data_root=root)
            check_cifar_roundtrip(ds, *out[split])
    ds = CIFAR100(split='train', data_root=folder, indices=[19, 0])
    assert ds[0]['gt_label'] == out['train'][1][19]
    assert len(ds.metainfo['classes']) == 100
    assert list(ds.metainfo['classes']) == sorted(CIFAR100_CLASSES)


def test_cifar10_roundtrip(tmp_path):
    folder, out = make_cifar(tmp_path, 'cifar10', n=20)
    for root in (str(tmp_path), folder):
        for split in ('train', 'test'):
            check_cifar_roundtrip(CIFAR10(split=split, data_root=root), *out[split])
    assert CIFAR10.METAINFO['classes'][0] == 'airplane'


def test_cifar_missing(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='cifar-100-python') as err:
        CIFAR100(split='train', data_root=str(tmp_path))
    assert 'No download' in str(err.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='data_batch_1'):
        CIFAR10(split='train')
    with pytest.raises(ValueError):
        CIFAR10(split='val', data_root=str(tmp_path))


# ----------------------------------------------------------------------------- ImageFolder
def make_image_folder(root):
    rng = np.random.RandomState(0)
    files = {}
    for split, classes in (('train', ('zebra', 'ant', 'cat')), ('val', ('zebra', 'ant', 'cat'))):
        for cls in classes:
            d = osp.join(root, split, cls)
            os.makedirs(d, exist_ok=True)
            for j, ext in enumerate(('png', 'PNG', 'bmp')):
                img = rng.randint(0, 256, size=(6 + j, 8, 3)).astype(np.uint8)
                path = osp.join(d, f'img{j}.{ext}')
                assert cv2.imwrite(path, img)
                files[path] = img
            with open(osp.join(d, 'notes.txt'), 'w') as f:
                f.write('not an image')
    return files


def test_image_folder_scan(tmp_path):
    files = make_image_folder(tmp_path)
    ds = ImageFolder(data_root=str(tmp_path), split='train')
    assert ds.metainfo['classes'] == ('ant', 'cat', 'zebra')
    assert len(ds) == 9
    labels = [ds[i]['gt_label'] for i in range(len(ds))]
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(ds[i]['img_path'].startswith(str(tmp_path / 'train')) for i in range(9))
    assert osp.basename(ds[0]['img_path']) == 'img0.png'
    # decoded in the pipeline by mmcv's LoadImageFromFile (BGR), BGR2RGB flips it
    with DefaultScope.overwrite_default_scope('kdzoo'):
        ds = ImageFolder(data_root=str(tmp_path), split='val',
                         pipeline=[dict(type='LoadImageFromFile'), dict(type='BGR2RGB'),
                                   dict(type='PackClsInputs')])
    out = ds[4]
    path = ds.get_data_info(4)['img_path']
    expected = files[path][..., ::-1].transpose(2, 0, 1)
    np.testing.assert_array_equal(out['inputs'].numpy(), expected)
    assert out['data_samples']['gt_label'].item() == 1


def test_image_folder_ann_file(tmp_path):
    make_image_folder(tmp_path)
    (tmp_path / 'val.txt').write_text('# path label\ncat/img1.PNG 1\n\nzebra/img0.png 2\n'
                                      'ant/img2.bmp 0\n')
    ds = ImageFolder(data_root=str(tmp_path), split='val', ann_file='val.txt')
    assert len(ds) == 3
    assert [ds[i]['gt_label'] for i in range(3)] == [1, 2, 0]
    assert ds[0]['img_path'] == osp.join(str(tmp_path), 'val', 'cat/img1.PNG')
    assert ds.metainfo['classes'] == ('ant', 'cat', 'zebra')
    # flat split folder and no classes: names default to the labels
    flat = tmp_path / 'flat'
    (flat / 'val').mkdir(parents=True)
    (flat / 'ann.txt').write_text('a b c.png 3\n')
    ds = ImageFolder(data_root=str(flat), split='val', ann_file='ann.txt')
    assert ds.metainfo['classes'] == ('0', '1', '2', '3')
    assert ds[0]['img_path'].endswith('a b c.png')
    ds = ImageFolder(data_root=str(flat), split='val', ann_file='ann.txt',
                     metainfo=dict(classes=['w', 'x', 'y', 'z']))
    assert ds.metainfo['classes'] == ['w', 'x', 'y', 'z']
    (flat / 'bad.txt').write_text('a.png x\n')
    with pytest.raises(ValueError, match='not an integer'):
        ImageFolder(data_root=str(flat), split='val', ann_file='bad.txt')


def test_image_folder_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        ImageFolder(data_root=str(tmp_path), split='train')
    (tmp_path / 'train' / 'a').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='no images'):
        ImageFolder(data_root=str(tmp_path), split='train')


# ----------------------------------------------------------------------------- transforms
def test_random_crop_pad():
    np.random.seed(0)
    img = np.random.randint(1, 256, size=(32, 32, 3)).astype(np.uint8)
    t = RandomCropPad(size=32, padding=4)
    seen_pad = False
    for _ in range(20):
        out = t(dict(img=img.copy()))
        assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32, 32)
        seen_pad |= bool((out['img'] == 0).all(axis=2).any())
    assert seen_pad  # zero padding shows up in some crops
    ident = RandomCropPad(size=32, padding=0)
    np.testing.assert_array_equal(ident(dict(img=img.copy()))['img'], img)
    grey = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)
    assert RandomCropPad(size=(24, 20), padding=2)(dict(img=grey))['img'].shape == (24, 20, 1)
    np.testing.assert_array_equal(RandomCropPad(28, padding=0)(dict(img=grey))['img'], grey)
    # numpy's global RNG drives it
    np.random.seed(3)
    a = t(dict(img=img))['img']
    np.random.seed(3)
    np.testing.assert_array_equal(t(dict(img=img))['img'], a)
    with pytest.raises(ValueError):
        RandomCropPad(size=40, padding=0)(dict(img=img))


def test_random_resized_crop_and_resize_shorter():
    np.random.seed(0)
    img = np.random.randint(0, 256, size=(60, 90, 3)).astype(np.uint8)
    t = RandomResizedCrop(size=24)
    for _ in range(10):
        out = t(dict(img=img))
        assert out['img'].shape == (24, 24, 3) and out['img'].dtype == np.uint8
    grey = img[..., :1].copy()
    assert RandomResizedCrop(size=(16, 20))(dict(img=grey))['img'].shape == (16, 20, 1)
    # full-area, fixed-ratio crop of a matching image is a plain resize
    full = RandomResizedCrop(size=(60, 90), scale=(1.0, 1.0), ratio=(1.5, 1.5))
    np.testing.assert_array_equal(full(dict(img=img))['img'], img)
    # impossible ratio: centre fallback
    top, left, ch, cw = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(4., 4.)).get_params(60, 90)
    assert (ch, cw) == (22, 90) and top == 19 and left == 0

    out = ResizeShorter(30)(dict(img=img))
    assert out['img'].shape == (30, 45, 3) and out['img_shape'] == (30, 45)
    assert ResizeShorter(30)(dict(img=img.transpose(1, 0, 2).copy()))['img'].shape == (45, 30, 3)
    assert ResizeShorter(14)(dict(img=grey))['img'].shape == (14, 21, 1)


def test_pack_cls_inputs():
    pack = PackClsInputs()
    for shape, chw in (((5, 7), (1, 5, 7)), ((5, 7, 1), (1, 5, 7)), ((5, 7, 3), (3, 5, 7))):
        img = np.random.randint(0, 256, size=shape).astype(np.uint8)
        out = pack(dict(img=img, gt_label=4, sample_idx=2))
        assert set(out) == {'inputs', 'data_samples'}
        assert out['inputs'].shape == chw and out['inputs'].dtype == torch.uint8
        assert out['inputs'].is_contiguous()
        np.testing.assert_array_equal(out['inputs'].numpy().reshape(chw),
                                      img.reshape(shape[:2] + (-1,)).transpose(2, 0, 1))
        gt = out['data_samples']['gt_label']
        assert gt.dtype == torch.long and gt.shape == () and gt.item() == 4
        assert set(out['data_samples']) == {'gt_label'}
    out = PackClsInputs(meta_keys=('sample_idx',))(dict(img=img, gt_label=np.int64(1),
                                                        sample_idx=2))
    assert out['data_samples']['sample_idx'] == 2
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 9
    assert BGR2RGB()(dict(img=bgr))['img'][0, 0].tolist() == [0, 0, 9]


def test_registry_names_and_mmcv_spellings():
    for name in ('RandomCropPad', 'RandomResizedCrop', 'ResizeShorter', 'BGR2RGB',
                 'PackClsInputs'):
        assert name in TRANSFORMS.module_dict
    for name in ('FashionMNIST', 'CIFAR10', 'CIFAR100', 'ImageFolder'):
        assert name in DATASETS.module_dict
    import mmcv.transforms as mt
    with DefaultScope.overwrite_default_scope('kdzoo'):
        assert TRANSFORMS.get('RandomFlip') is mt.RandomFlip
        assert TRANSFORMS.get('mmcv.RandomFlip') is mt.RandomFlip
        assert TRANSFORMS.get('CenterCrop') is mt.CenterCrop
        from mmengine.registry import TRANSFORMS as ROOT
        assert isinstance(ROOT.build(dict(type='RandomCropPad', size=8)), RandomCropPad)
    from mmengine.registry import TRANSFORMS as ROOT
    assert isinstance(ROOT.build(dict(type='kdzoo.RandomCropPad', size=8)), RandomCropPad)
    assert isinstance(ROOT.build(dict(type='RandomFlip', prob=0.5)), mt.RandomFlip)


def test_dataloader_batch_structure(tmp_path):
    from mmengine.runner import Runner
    images, labels = make_fashion(tmp_path, 'train', n=10)
    cfg = dict(
        batch_size=4, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='FashionMNIST', split='train', data_root=str(tmp_path),
                     pipeline=[dict(type='RandomCropPad', size=28, padding=0),
                               dict(type='mmcv.RandomFlip', prob=0.0),
                               dict(type='CenterCrop', crop_size=24),
                               dict(type='PackClsInputs')]))
    with DefaultScope.overwrite_default_scope('kdzoo'):
        loader = Runner.build_dataloader(cfg, seed=0)
    batches = list(loader)
    assert len(batches) == 3
    batch = batches[0]
    assert set(batch) == {'inputs', 'data_samples'}
    assert batch['inputs'].shape == (4, 1, 24, 24) and batch['inputs'].dtype == torch.uint8
    assert set(batch['data_samples']) == {'gt_label'}
    gt = batch['data_samples']['gt_label']
    assert gt.shape == (4,) and gt.dtype == torch.long
    assert gt.tolist() == labels[:4].tolist()
    np.testing.assert_array_equal(batch['inputs'][1, 0].numpy(), images[1][2:26, 2:26])
    assert batches[-1]['inputs'].shape[0] == 2

    # torch DataLoader with MMEngine's default_collate, CIFAR-style pipeline
    folder, out = make_cifar(tmp_path, 'cifar100', n=20)
    ds = CIFAR100(split='test', data_root=folder,
                  pipeline=[RandomCropPad(32, padding=4), PackClsInputs()])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8,
                                                  collate_fn=default_collate)))
    assert batch['inputs'].shape == (8, 3, 32, 32) and batch['inputs'].dtype == torch.uint8
    assert batch['data_samples']['gt_label'].tolist() == out['test'][1][:8]
