"""``python tools/build_teacher_store.py ...``: kdzoo.cli.build_teacher_store in a source
checkout (an installed kdzoo also has ``kdzoo-build-teacher-store``)."""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # a source checkout without ``pip install -e .``
    sys.path.insert(0, ROOT)

from kdzoo.cli.build_teacher_store import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
