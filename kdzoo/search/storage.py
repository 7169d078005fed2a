"""Optuna storage and study of a search: open (or create) them, and check that a worker
joining a study searches the same space in the same directions."""
import os
import os.path as osp
import re
import time
from typing import Callable, Optional, Sequence

import optuna
from optuna.study import Study

from kdzoo.utils import check_keys
from .space import SearchSpace


#: The storage forms ``--storage`` / ``search`` accept, for error messages.
STORAGE_FORMS = ('a journal file: PATH.journal or PATH.log (the default, '
                 'WORK_DIR/search.journal)',
                 'SQLite: PATH.db / PATH.sqlite / PATH.sqlite3 or sqlite:///PATH',
                 'PostgreSQL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB '
                 '(driver psycopg2; postgresql+psycopg2:// also works)')
_SQLITE_SUFFIXES = ('.db', '.sqlite', '.sqlite3')


def storage_url(url: str) -> str:
    """The SQLAlchemy URL of a storage argument: ``*.db`` paths become SQLite URLs and a
    bare ``postgresql://`` gets the installed driver (SQLAlchemy 2 defaults to psycopg 3,
    kdzoo installs psycopg2). Anything else is refused with the accepted forms."""
    if '://' not in url:
        if re.match(r'^[A-Za-z][\w+.-]*:', url):
            raise ValueError(f'--storage {url!r} looks like a URL without "//"; give ' +
                             '; or '.join(STORAGE_FORMS))
        if url.endswith(_SQLITE_SUFFIXES):
            return 'sqlite:///' + osp.abspath(url)
        raise ValueError(f'--storage {url!r} is not a storage kdzoo knows; give ' +
                         '; or '.join(STORAGE_FORMS))
    scheme, rest = url.split('://', 1)
    if scheme == 'sqlite':
        if not rest.startswith('/'):
            raise ValueError(f'--storage {url!r}: a SQLite URL is sqlite:///PATH (three '
                             f'slashes; four for an absolute path)')
        return url
    if scheme in ('postgresql', 'postgres'):
        return 'postgresql+psycopg2://' + rest
    if scheme == 'postgresql+psycopg2':
        return url
    raise ValueError(f'--storage {url!r}: unsupported scheme {scheme!r}; give ' +
                     '; or '.join(STORAGE_FORMS))


def repair_journal(path: str, log: Callable[[str], None] = print) -> Optional[str]:
    """Cut a partial last line off a journal file (a write that a full disk or a killed
    worker left half done; every later load would fail on it). Runs under the journal's
    lock; the cut bytes are kept in ``PATH.partial-<time>``. Returns that backup's path,
    or ``None`` when the file was whole."""
    from optuna.storages.journal import JournalFileOpenLock
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return None
    lock = JournalFileOpenLock(path)
    lock.acquire()
    try:
        with open(path, 'rb+') as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b'\n':
                return None
            f.seek(0)
            data = f.read()
            keep = data.rfind(b'\n') + 1
            backup = f'{path}.partial-{time.strftime("%Y%m%d-%H%M%S")}'
            with open(backup, 'wb') as out:
                out.write(data[keep:])
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    log(f'[search] {path} ended in a partial line ({len(data) - keep} bytes, an interrupted '
        f'write); cut it off, kept in {backup}')
    return backup


def _schema_race(err: Exception) -> bool:
    """Two workers creating the same database schema at once, or SQLite busy: transient,
    worth a retry (a refused connection or a bad password is not)."""
    import sqlalchemy.exc
    if isinstance(err, sqlalchemy.exc.IntegrityError):
        return True
    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.OperationalError) and (
        'already exists' in text or 'database is locked' in text)


def _hide_password(url: str) -> str:
    return re.sub(r'(://[^:/@]+):[^@]*@', r'\1:***@', url)


def open_storage(url: Optional[str], work_dir: str, log: Callable[[str], None] = print):
    """The Optuna storage: a journal file (default ``WORK_DIR/search.journal``; any path
    ending in ``.journal`` / ``.log``), SQLite (a ``*.db`` path or ``sqlite:///x.db``) or
    PostgreSQL (``postgresql://user:pw@host/db``). See :data:`STORAGE_FORMS`."""
    if url is None or (url.endswith(('.journal', '.log')) and '://' not in url):
        path = url or osp.join(work_dir, 'search.journal')
        try:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            repair_journal(path, log)
        except OSError as err:
            raise OSError(f'cannot open the search journal {path}: {err}') from err
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
        # An open(O_EXCL)-based lock also works on NFS, where workers on several nodes
        # share one file.
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    url = storage_url(url)
    if url.startswith('sqlite'):
        os.makedirs(osp.dirname(osp.abspath(url[len('sqlite:///'):])) or '.', exist_ok=True)
        engine_kwargs = dict(connect_args=dict(timeout=120))
    else:
        engine_kwargs = dict(pool_pre_ping=True)
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as err:
            if attempt == 4 or not _schema_race(err):
                raise ConnectionError(f'cannot open the search storage {_hide_password(url)}: '
                                      f'{type(err).__name__}: {str(err).strip()[:500]}') \
                    from err
            time.sleep(1.0 + attempt)  # workers starting together race to create it


def open_study(storage, study_name: str, directions: Sequence[str], sampler,
               space: SearchSpace, enqueue: Sequence[dict] = (),
               attrs: Optional[dict] = None, pruner=None) -> Study:
    """Create the study, or join it when it exists (workers, ``--resume``).

    The creator stores the space's signature and enqueues the warm-start points; a worker
    that joins checks that its space and directions are the same.
    """
    directions = [optuna.study.StudyDirection[d.upper()] for d in directions]
    by_name = {d.name: d for d in space.decisions}
    for i, params in enumerate(enqueue):  # before anything is stored
        check_keys(params, space.names, f'search.enqueue[{i}]')
        for name, label in params.items():
            by_name[name].check_label(label, f'search.enqueue[{i}]')
    try:
        storage.create_new_study(directions, study_name=study_name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                              pruner=pruner)
    if created:
        study.set_user_attr('space', space.signature())
        for key, value in (attrs or {}).items():
            study.set_user_attr(key, value)
        for params in enqueue:
            study.enqueue_trial(dict(params), user_attrs=dict(enqueued=True))
        return study
    if list(study.directions) != directions:
        raise ValueError(f'study {study_name!r} exists with directions {study.directions}, '
                         f'this search has {directions}; use another --study-name')
    stored = study.user_attrs.get('space')
    if stored is not None and stored != space.signature():
        raise ValueError(f'study {study_name!r} exists with a different search space; use '
                         f'another --study-name or --work-dir to start a new search')
    return study
