"""Search a distiller: ``python tools/search.py CONFIG`` (see ``kdzoo.cli.search``; an
installed kdzoo also has ``kdzoo-search`` and ``python -m kdzoo.cli.search``)."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # a source checkout without ``pip install -e .``
    sys.path.insert(0, ROOT)

from kdzoo.cli.search import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
