"""Write the canvas detection (COCO) or segmentation (Cityscapes) set from Fashion-MNIST.

    python tools/dataset_converters/make_canvas_data.py coco data/canvas_coco \\
        --height 64 --width 64 --items 1 2 --scale 24 48 --train 1000 --val 300
    python tools/dataset_converters/make_canvas_data.py cityscapes data/canvas_cityscapes \\
        --height 64 --width 64 --items 1 2 --scale 28 56 --train 1000 --val 300

(the sets of the measured canvas configs: configs/detection/canvas/_base_/canvas_coco.py
and configs/_base_/datasets/canvas_cityscapes.py).

Real Fashion-MNIST items pasted without overlap on textured canvases, with exact boxes and
masks (see kdzoo/datasets/canvas.py). mmdet's CocoDataset / CocoMetric and mmseg's
CityscapesDataset / IoUMetric read the result unchanged. The same arguments give the same
files.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.datasets.canvas import CanvasSpec, write_canvas_sets  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('format', choices=['coco', 'cityscapes'])
    parser.add_argument('out', help='root folder to write')
    parser.add_argument('--train', type=int, default=1000, help='training canvases')
    parser.add_argument('--val', type=int, default=250, help='test canvases (val split)')
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--items', type=int, nargs=2, default=(1, 4), metavar=('MIN', 'MAX'))
    parser.add_argument('--scale', type=int, nargs=2, default=(24, 56), metavar=('MIN', 'MAX'),
                        help='side in pixels of a pasted item')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fmnist-root', default=None,
                        help='Fashion-MNIST IDX folder (default: the usual places)')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if min(args.scale) < 4 or args.scale[0] > args.scale[1]:
        raise SystemExit(f'--scale {args.scale}: need 4 <= MIN <= MAX')
    if args.scale[1] > min(args.height, args.width):
        raise SystemExit(f'--scale MAX {args.scale[1]} exceeds the canvas '
                         f'{args.height}x{args.width}')
    splits = [(split, CanvasSpec(num, args.height, args.width, tuple(args.items),
                                 tuple(args.scale)))
              for split, num in (('train', args.train), ('val', args.val)) if num > 0]
    total = sum(spec.num_images for _, spec in splits)
    if args.no_progress:
        write_canvas_sets(args.out, args.format, splits, args.seed, args.fmnist_root)
    else:
        from rich.progress import Progress
        with Progress() as bar:
            task = bar.add_task(f'{args.format} canvases', total=total)
            write_canvas_sets(args.out, args.format, splits, args.seed, args.fmnist_root,
                              progress=lambda: bar.advance(task))
    print(f'wrote {total} {args.format} canvases to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
