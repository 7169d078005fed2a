"""``python tools/train.py ...``: kdzoo.cli.train in a source checkout (an installed kdzoo also has
``kdzoo-train`` and ``python -m kdzoo.cli.train``)."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # a source checkout without ``pip install -e .``
    sys.path.insert(0, ROOT)

from kdzoo.cli.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
