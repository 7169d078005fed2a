"""ImageNet-style image folders: ``data_root/<split>/<class>/<image>``, or, without
labels (``with_label=False``), any folder of images: ``data_root/<split>/**/<image>``.

Samples carry ``img_path`` and ``gt_label``; images are decoded in the pipeline by mmcv's
``LoadImageFromFile``, which yields **BGR** arrays. Add ``dict(type='BGR2RGB')`` right
after it when the rest of the pipeline or the model expects RGB (as the in-memory CIFAR
and Fashion-MNIST datasets deliver)::

    pipeline = [dict(type='LoadImageFromFile'), dict(type='BGR2RGB'),
                dict(type='RandomResizedCrop', size=224), dict(type='RandomFlip', prob=0.5),
                dict(type='PackClsInputs')]
"""
import os
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path

from kdzoo.registry import DATASETS
from .seeding import SeededSamplesMixin

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def find_classes(folder: str) -> List[str]:
    """Sorted names of the sub-folders of ``folder`` (hidden ones skipped)."""
    if not osp.isdir(folder):
        return []
    return sorted(e.name for e in os.scandir(folder)
                  if e.is_dir() and not e.name.startswith('.'))


@DATASETS.register_module()
class ImageFolder(SeededSamplesMixin, BaseDataset):
    """Images in class folders, or listed in an annotation file.

    Args:
        data_root (str): Dataset root; images live under ``data_root/<split>``.
        split (str): Sub-folder of ``data_root`` (``'train'`` or ``'val'`` by convention;
            any name is accepted). Defaults to ``'train'``.
        ann_file (str, optional): Text file (relative to ``data_root`` unless absolute)
            with one ``relative/path label`` line per image, paths relative to
            ``data_root/<split>``; blank lines and ``#`` comments are skipped. Without it
            the split folder is scanned: classes are its sorted sub-folder names and
            labels their positions; files with extensions jpg/jpeg/png/bmp (any case) in
            each class folder (recursively, in sorted order) are used.
        with_label (bool): ``False`` reads images without labels (label-free
            pre-training such as KDEP): every image under the split folder, at any depth,
            in sorted order, whether or not it has class folders; an ``ann_file`` then
            lists one relative path per line (a trailing label is ignored). Samples carry
            ``img_path`` only, and ``metainfo`` has no classes. Defaults to ``True``.
        **kwargs: Passed to :class:`~mmengine.dataset.BaseDataset`; ``metainfo=dict(
            classes=[...])`` overrides the class names (useful with ``ann_file`` when the
            split folder is flat, e.g. ImageNet's ``val``).

    In ``ann_file`` mode, classes default to the split folder's sorted sub-folders, else
    those of ``data_root/train``, else ``'0' .. str(max_label)``.
    """

    def __init__(self, data_root: str, split: str = 'train', ann_file: Optional[str] = None,
                 with_label: bool = True, **kwargs):
        if not isinstance(with_label, bool):
            raise TypeError(f'ImageFolder: with_label must be True or False, got '
                            f'{with_label!r}')
        self.split = split
        self.with_label = with_label
        kwargs.setdefault('data_prefix', dict(img_path=split))
        super().__init__(ann_file=ann_file or '', data_root=data_root, **kwargs)

    @property
    def img_prefix(self) -> str:
        return self.data_prefix['img_path']

    def load_data_list(self) -> List[dict]:
        if not self.with_label:
            data_list = self._load_unlabeled()
            if not data_list:
                raise FileNotFoundError(
                    f'ImageFolder(with_label=False): no images found (data_root='
                    f'{self.data_root!r}, split={self.split!r}, ann_file='
                    f'{self.ann_file or None!r}); expected '
                    f'{osp.join(self.img_prefix, "**", "<image>.jpg|jpeg|png|bmp")}')
            return data_list
        if self.ann_file:
            data_list = self._load_ann_file()
        else:
            data_list = self._scan_folder()
        if not data_list:
            raise FileNotFoundError(
                f'ImageFolder: no images found (data_root={self.data_root!r}, '
                f'split={self.split!r}, ann_file={self.ann_file or None!r}); expected '
                f'{osp.join(self.img_prefix, "<class>", "<image>.jpg|jpeg|png|bmp")}')
        return data_list

    def _set_classes(self, classes: List[str]) -> None:
        if 'classes' not in self._metainfo:
            self._metainfo['classes'] = tuple(classes)

    def _scan_folder(self) -> List[dict]:
        root = self.img_prefix
        if not osp.isdir(root):
            raise FileNotFoundError(f'ImageFolder: folder {root!r} does not exist '
                                    f'(data_root={self.data_root!r}, split={self.split!r})')
        classes = find_classes(root)
        if 'classes' in self._metainfo:
            given = list(self._metainfo['classes'])
            missing = [c for c in classes if c not in given]
            if missing:
                raise ValueError(f'ImageFolder: folders {missing} of {root!r} are not in '
                                 'metainfo classes')
            class_to_idx = {c: given.index(c) for c in classes}
        else:
            self._set_classes(classes)
            class_to_idx = {c: i for i, c in enumerate(classes)}
        data_list = []
        for cls in classes:
            cls_dir = osp.join(root, cls)
            for dirpath, dirnames, filenames in os.walk(cls_dir, followlinks=True):
                dirnames.sort()
                for name in sorted(filenames):
                    if is_image_file(name):
                        data_list.append(dict(img_path=osp.join(dirpath, name),
                                              gt_label=class_to_idx[cls]))
        return data_list

    def _load_unlabeled(self) -> List[dict]:
        """Every image of the split folder (recursively, sorted), or those ``ann_file``
        lists; no labels."""
        root = self.img_prefix
        if self.ann_file:
            with get_local_path(self.ann_file) as local_path:
                with open(local_path, encoding='utf-8') as f:
                    lines = f.read().splitlines()
            paths = []
            for line in lines:
                line = line.strip()
                if line and not line.startswith('#'):
                    parts = line.rsplit(maxsplit=1)
                    # "path label" lines of a labelled list: the label is ignored
                    labelled = len(parts) == 2 and parts[1].lstrip('-').isdigit()
                    paths.append(parts[0] if labelled else line)
            return [dict(img_path=osp.join(root, p)) for p in paths]
        if not osp.isdir(root):
            raise FileNotFoundError(f'ImageFolder: folder {root!r} does not exist '
                                    f'(data_root={self.data_root!r}, split={self.split!r})')
        data_list = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
            for name in sorted(filenames):
                if is_image_file(name):
                    data_list.append(dict(img_path=osp.join(dirpath, name)))
        return data_list

    def _load_ann_file(self) -> List[dict]:
        data_list = []
        with get_local_path(self.ann_file) as local_path:
            with open(local_path, encoding='utf-8') as f:
                lines = f.read().splitlines()
        for lineno, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f'{self.ann_file}:{lineno}: expected "path label", got '
                                 f'{line!r}')
            try:
                label = int(parts[1])
            except ValueError:
                raise ValueError(f'{self.ann_file}:{lineno}: label {parts[1]!r} is not an '
                                 'integer')
            data_list.append(dict(img_path=osp.join(self.img_prefix, parts[0]),
                                  gt_label=label))
        if 'classes' not in self._metainfo:
            classes = find_classes(self.img_prefix) or find_classes(
                osp.join(self.data_root, 'train'))
            max_label = max((d['gt_label'] for d in data_list), default=-1)
            if len(classes) <= max_label:
                classes = [str(i) for i in range(max_label + 1)]
            self._set_classes(classes)
        return data_list


__all__ = ['ImageFolder', 'IMG_EXTENSIONS']
