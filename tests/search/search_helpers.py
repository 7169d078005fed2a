"""Helpers of the search tests."""
from kdzoo.search import TrialBook


def new_book(searcher, space, storage=None, name=None, direction='maximize') -> TrialBook:
    """A study for ``searcher`` over ``space`` (in memory unless ``storage``) and its
    bookkeeping."""
    import optuna
    storage = storage if storage is not None else optuna.storages.InMemoryStorage()
    study = optuna.create_study(directions=searcher.directions(direction),
                                sampler=searcher.sampler(space), storage=storage,
                                study_name=name, load_if_exists=True)
    return TrialBook(study, storage)
