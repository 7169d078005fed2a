"""``python tools/test.py ...``: kdzoo.cli.test in a source checkout (an installed kdzoo also has
``kdzoo-test`` and ``python -m kdzoo.cli.test``)."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # a source checkout without ``pip install -e .``
    sys.path.insert(0, ROOT)

from kdzoo.cli.test import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
