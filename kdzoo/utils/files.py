"""Small status files that a crash must not leave half written."""
import json
import os
import os.path as osp
from typing import Any, Optional


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (removed when the write fails), so
    readers see the old or the new file, never a part."""
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str))


def read_json(path: str) -> Optional[Any]:
    """The file's JSON, or ``None`` when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
