"""Optuna storage and study of a search: open (or create) them, and check that a worker
joining a study searches the same space in the same directions."""
import os
import os.path as osp
import time
from typing import Optional, Sequence

import optuna
from optuna.study import Study

from kdzoo.utils import check_keys
from .space import SearchSpace


def open_storage(url: Optional[str], work_dir: str):
    """The Optuna storage: a journal file (default ``WORK_DIR/search.journal``; any path
    ending in ``.journal`` / ``.log``) or an RDB URL (``sqlite:///x.db``,
    ``postgresql://user:pw@host/db``)."""
    if url is None or (url.endswith(('.journal', '.log')) and '://' not in url):
        path = url or osp.join(work_dir, 'search.journal')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
        # An open(O_EXCL)-based lock also works on NFS, where workers on several nodes
        # share one file.
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    engine_kwargs = {}
    if url.startswith('sqlite'):
        if url.startswith('sqlite:///'):
            os.makedirs(osp.dirname(osp.abspath(url[len('sqlite:///'):])) or '.', exist_ok=True)
        engine_kwargs = dict(connect_args=dict(timeout=120))
    else:
        engine_kwargs = dict(pool_pre_ping=True)
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception:  # workers starting together may race to create the schema
            if attempt == 4:
                raise
            time.sleep(1.0 + attempt)


def open_study(storage, study_name: str, directions: Sequence[str], sampler,
               space: SearchSpace, enqueue: Sequence[dict] = (),
               attrs: Optional[dict] = None) -> Study:
    """Create the study, or join it when it exists (workers, ``--resume``).

    The creator stores the space's signature and enqueues the warm-start points; a worker
    that joins checks that its space and directions are the same.
    """
    directions = [optuna.study.StudyDirection[d.upper()] for d in directions]
    try:
        storage.create_new_study(directions, study_name=study_name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    if created:
        study.set_user_attr('space', space.signature())
        for key, value in (attrs or {}).items():
            study.set_user_attr(key, value)
        for params in enqueue:
            check_keys(params, space.names, 'a search.enqueue point')
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
