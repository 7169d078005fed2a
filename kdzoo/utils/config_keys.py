"""One check for the keys of a config dict: unknown keys fail with the valid ones and a
"did you mean" (``search``, ``search.proxy``, ``search.space``, distill terms, ...)."""
import difflib
from typing import Iterable, Mapping


def check_keys(given: Iterable[str], valid: Iterable[str], where: str,
               error: type = KeyError) -> None:
    """Raise ``error`` naming ``where``, the unknown keys, close matches and the valid keys.

    >>> check_keys({'n_trial': 1}, ['n_trials', 'seed'], 'search')
    Traceback (most recent call last):
    ...
    KeyError: "search has unknown keys ['n_trial'] (did you mean 'n_trials'?); valid: n_trials, seed"
    """
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1)
        if close:
            hints.append(f'{close[0]!r}')
    hint = f' (did you mean {", ".join(hints)}?)' if hints else ''
    raise error(f'{where} has unknown keys {unknown}{hint}; valid: '
                f'{", ".join(str(v) for v in valid)}')


def missing_keys(given: Mapping, required: Iterable[str], where: str) -> None:
    """Raise KeyError naming ``where`` and the first required key that is missing."""
    for key in required:
        if key not in given:
            raise KeyError(f'{where} needs the key {key!r}')
