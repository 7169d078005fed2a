"""The tabular search benchmark: searchers replayed against a table of trained distillers.

Every distiller of a small search space was trained once on a proxy
(``tools/analysis/build_tabular_benchmark.py``), once per training seed, and its metric
stored in CSV tables (``kdzoo/benchmarks/data/fmnist_kd_v2_table_seed{0,1,2}.csv`` for v2,
``fmnist_kd_table_seed{0,1,2}.csv`` for v1; averaged on load). A searcher can then be run
against the table many times, over many seeds, in seconds: the objective looks the trial's
parameters up instead of training (as NAS-Bench-101/201 do for architecture search). The
replay runs through the entry point of ``tools/search.py`` (:func:`kdzoo.search.run_search`:
invalid chains and duplicates are PRUNED and do not use the budget, failed rows FAIL and
do; successive halving plans its rungs), so what is measured is the searcher as kdzoo
runs it.

Table format: ``#`` comment lines (how the table was made), then a CSV header with the
space's parameter names (``kd0.transform0``, ``kd0.distance``, ...) followed by
:data:`RESULT_COLUMNS`, one row per distiller.

Metrics of a run (the values of its budget trials, in order):

- *simple regret* after ``t`` trials: ``best value of the table - best value found in the
  first t trials`` (>= 0; before any successful trial it is ``best - worst`` of the table);
- *trials to the top fraction* (default 5 %): the first trial whose value is at least the
  table's ``ceil(fraction * n_ok)``-th best value (ties count as inside), or ``None`` when
  the budget ends first.
"""
import csv
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from kdzoo.search import Job, SearchSpace, TrialResult

#: Where the shipped tables live.
BENCHMARK_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'data')


#: The shipped benchmarks: the space config each table was built from and the prefix of its
#: seed files. v1: one logit term, a 2-epoch proxy on 2000 images (noisy: seed-to-seed
#: Spearman 0.50); v2: logits + a feature term + the student's width, a 4-epoch proxy on
#: 10k images from an offline teacher store, validated on a held-out training split.
#: ``work_dir``: where the builder keeps the teacher, the store and the runs.
BENCHMARKS = {
    'v1': dict(space='configs/search/tabular_fmnist_space.py', prefix='fmnist_kd_table',
               seeds=(0, 1, 2), work_dir='work_dirs/tabular_fmnist'),
    'v2': dict(space='configs/search/tabular_fmnist_v2_space.py',
               prefix='fmnist_kd_v2_table', seeds=(0, 1, 2),
               work_dir='work_dirs/tabular_fmnist_v2'),
}
#: The benchmark the tools and loaders use unless told otherwise (v2: the low-noise one).
DEFAULT_BENCHMARK = 'v2'


def _benchmark(version: str) -> dict:
    if version not in BENCHMARKS:
        raise KeyError(f'tabular benchmark {version!r}; valid: {sorted(BENCHMARKS)}')
    return BENCHMARKS[version]


def seed_table(seed: int, version: str = DEFAULT_BENCHMARK) -> str:
    """The shipped Fashion-MNIST table file of one training seed of benchmark ``version``."""
    return osp.join(BENCHMARK_DIR, f'{_benchmark(version)["prefix"]}_seed{seed}.csv')


def default_tables(version: str = DEFAULT_BENCHMARK) -> Tuple[str, ...]:
    """The seed files of benchmark ``version`` (averaged by :func:`load_table`)."""
    return tuple(seed_table(seed, version) for seed in _benchmark(version)['seeds'])


#: The default benchmark's seed files (its distillers trained with seeds 0, 1 and 2) and
#: space config.
DEFAULT_TABLES = default_tables(DEFAULT_BENCHMARK)
DEFAULT_SPACE_CONFIG = BENCHMARKS[DEFAULT_BENCHMARK]['space']
#: Columns after the parameter columns.
RESULT_COLUMNS = ('metric', 'train_s', 'final_loss', 'state', 'error')
_NUMBER = re.compile(r'^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$')


# --- file format ------------------------------------------------------------------------
def _norm(label: Any) -> str:
    """A label as a key part: numbers (also numeric strings from a CSV) as ``repr(float)``,
    so that ``1``, ``1.0`` and ``'1.0'`` are the same key."""
    if isinstance(label, bool):
        return str(label)
    if isinstance(label, (int, float)):
        return repr(float(label))
    text = str(label)
    if _NUMBER.match(text):
        return repr(float(text))
    return text


def row_key(params: Dict[str, Any], names: Sequence[str]) -> Tuple[str, ...]:
    """The table key of a parameter assignment (labels of ``names``, in order)."""
    return tuple(_norm(params[name]) for name in names)


def parse_label(text: str) -> Any:
    """A CSV cell back to an Optuna label: numbers become floats, ``True``/``False`` bools."""
    if text in ('True', 'False'):
        return text == 'True'
    if _NUMBER.match(text):
        return float(text)
    return text


def read_table_file(path: str) -> Tuple[List[str], List[Dict[str, str]]]:
    """``(header comment lines, rows as dicts of strings)`` of a table file."""
    header, lines = [], []
    with open(path, newline='') as f:
        for line in f:
            if line.startswith('#'):
                header.append(line[1:].strip())
            elif line.strip():
                lines.append(line)
    rows = list(csv.DictReader(lines))
    return header, rows


def write_header(path: str, header: Sequence[str], names: Sequence[str]) -> None:
    """Start a table file: comment lines and the CSV header row."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        for line in header:
            f.write(f'# {line}\n')
        csv.writer(f).writerow(list(names) + list(RESULT_COLUMNS))


def append_rows(path: str, rows: Iterable[Dict[str, Any]], names: Sequence[str]) -> None:
    """Append rows (parameter labels + :data:`RESULT_COLUMNS`) and flush them to disk."""
    with open(path, 'a', newline='') as f:
        writer = csv.writer(f)
        for row in rows:
            writer.writerow([row[n] for n in names] +
                            [row.get(c, '') for c in RESULT_COLUMNS])
        f.flush()
        os.fsync(f.fileno())


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


# --- the table ----------------------------------------------------------------------------
class Table:
    """Rows of a tabular benchmark, looked up by parameter labels.

    Args:
        names: the parameter names (the space's decision names), in order.
        rows: dicts with the parameters and ``metric`` (float), ``state`` (``'ok'`` rows are
            the successful ones), optionally ``train_s``, ``final_loss``, ``error``.
        header: the file's comment lines.
        direction: ``'maximize'`` (default) or ``'minimize'``.
    """

    def __init__(self, names: Sequence[str], rows: Iterable[Dict[str, Any]],
                 header: Sequence[str] = (), direction: str = 'maximize'):
        if direction not in ('maximize', 'minimize'):
            raise ValueError(f'direction={direction!r}; valid: maximize, minimize')
        self.names = list(names)
        self.header = list(header)
        self.direction = direction
        self.rows: Dict[Tuple[str, ...], Dict[str, Any]] = {}
        for raw in rows:
            row = dict(raw)
            for name in self.names:
                if name not in row:
                    raise KeyError(f'table row without the parameter {name!r}: {raw}')
                if isinstance(row[name], str):
                    row[name] = parse_label(row[name])
            row['metric'] = _float(row.get('metric'))
            row['state'] = str(row.get('state') or ('ok' if math.isfinite(row['metric'])
                                                     else 'failed'))
            if row['state'] == 'ok' and not math.isfinite(row['metric']):
                row['state'] = 'failed'
            key = row_key(row, self.names)
            if key in self.rows:
                raise ValueError(f'table: duplicate row {dict(zip(self.names, key))}')
            self.rows[key] = row
        if not self.ok_values:
            raise ValueError('table: no row with state "ok"')

    # --- looking up ---
    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, params: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The row of ``params`` (``None`` when the table has none)."""
        try:
            return self.rows.get(row_key(params, self.names))
        except KeyError:
            return None

    @property
    def ok_values(self) -> List[float]:
        return [r['metric'] for r in self.rows.values() if r['state'] == 'ok']

    @property
    def sign(self) -> int:
        """+1 when larger values are better, else -1."""
        return 1 if self.direction == 'maximize' else -1

    @property
    def best(self) -> float:
        """The best value of the table (over its ``ok`` rows)."""
        s = self.sign
        return s * max(s * v for v in self.ok_values)

    @property
    def worst(self) -> float:
        s = self.sign
        return s * min(s * v for v in self.ok_values)

    def top_threshold(self, fraction: float = 0.05) -> float:
        """The ``ceil(fraction * n_ok)``-th best value: values at least this good (ties
        included) are in the top ``fraction``."""
        if not 0 < fraction <= 1:
            raise ValueError(f'fraction={fraction}; must be in (0, 1]')
        s = self.sign
        values = sorted((s * v for v in self.ok_values), reverse=True)
        k = max(1, math.ceil(fraction * len(values)))
        return s * values[k - 1]

    def in_top(self, value: float, fraction: float = 0.05) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self.sign * value >= self.sign * self.top_threshold(fraction)

    def missing(self, space: SearchSpace) -> List[Dict[str, Any]]:
        """The valid distillers of ``space`` that the table has no row for."""
        import itertools
        out = []
        for path in itertools.product(*[range(len(d.labels)) for d in space.decisions]):
            params = space.labels_of(path)
            if space.check(params) is None and self.lookup(params) is None:
                out.append(params)
        return out

    def meta(self, prefix: str) -> Optional[str]:
        """The header line starting with ``prefix`` (e.g. ``'teacher:'``), without it."""
        for line in self.header:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return None

    def summary(self) -> Dict[str, Any]:
        states: Dict[str, int] = {}
        for row in self.rows.values():
            states[row['state']] = states.get(row['state'], 0) + 1
        seconds = [_float(r.get('train_s')) for r in self.rows.values()]
        seconds = [s for s in seconds if math.isfinite(s)]
        return dict(rows=len(self), states=states, best=self.best, worst=self.worst,
                    top5_threshold=self.top_threshold(0.05),
                    n_top5=sum(self.in_top(v, 0.05) for v in self.ok_values),
                    train_s_total=sum(seconds),
                    train_s_mean=sum(seconds) / len(seconds) if seconds else math.nan)


def load_table(path: Union[None, str, Sequence[str]] = None,
               space: Optional[SearchSpace] = None, direction: str = 'maximize',
               version: str = DEFAULT_BENCHMARK) -> Table:
    """Load a table file, or several (one per training seed) averaged into one table.

    ``path``: a file, a list of files, or ``None`` for the shipped Fashion-MNIST table of
    benchmark ``version`` (the mean of its seed files, :func:`default_tables`). With several
    files, each distiller's ``metric`` is the mean over the files (``metric_seeds`` keeps the
    values) and its ``train_s`` the mean time; a distiller is ``ok`` only when it is ``ok``
    in every file (otherwise it takes the first other state), and every file must hold the
    same distillers. With ``space``, the parameter columns must be the space's decision names.
    """
    paths = list(default_tables(version)) if path is None else (
        [path] if isinstance(path, str) else list(path))
    if not paths:
        raise ValueError('load_table: no table file given')
    tables = [_read_one(p, space) for p in paths]
    if len(tables) == 1:
        names, header, rows = tables[0]
        return Table(names, rows, header, direction)
    names, header, _ = tables[0]
    merged = {}
    for p, (names_i, _, rows_i) in zip(paths, tables):
        if names_i != names:
            raise ValueError(f'{p}: parameter columns {names_i} differ from {names} '
                             f'({paths[0]})')
        keys = {row_key(r, names): r for r in rows_i}
        if merged and set(keys) != set(merged):
            extra = sorted(set(keys) ^ set(merged))[:3]
            raise ValueError(f'{p}: holds other distillers than {paths[0]} (e.g. {extra})')
        for key, row in keys.items():
            merged.setdefault(key, []).append(row)
    rows = []
    for key, group in merged.items():
        values = [_float(r.get('metric')) for r in group]
        states = [str(r.get('state') or 'ok') for r in group]
        bad = [s for s in states if s != 'ok']
        seconds = [_float(r.get('train_s')) for r in group]
        row = {n: group[0][n] for n in names}
        row.update(metric=sum(values) / len(values) if not bad else math.nan,
                   metric_seeds=values, state=bad[0] if bad else 'ok',
                   train_s=sum(seconds) / len(seconds),
                   error='; '.join(filter(None, (r.get('error') for r in group))))
        rows.append(row)
    header = list(header) + [f'mean of {len(paths)} tables: ' +
                             ', '.join(osp.basename(p) for p in paths)]
    return Table(names, rows, header, direction)


def _read_one(path: str, space: Optional[SearchSpace]):
    """``(parameter names, header, rows)`` of one table file."""
    header, rows = read_table_file(path)
    if not rows:
        raise ValueError(f'{path}: no rows')
    columns = list(rows[0].keys())
    names = [c for c in columns if c not in RESULT_COLUMNS]
    if space is not None and names != space.names:
        raise ValueError(f'{path}: parameter columns {names} are not the space\'s decisions '
                         f'{space.names}')
    return names, header, rows


def load_space(config: Optional[str] = None, version: str = DEFAULT_BENCHMARK) -> SearchSpace:
    """The search space of a search config (default: the space config of the shipped
    benchmark ``version``, relative to the repository root)."""
    from mmengine.config import Config

    from kdzoo.models.teachers import resolve_config_path
    from kdzoo.search import load_search
    config = config or resolve_config_path(_benchmark(version)['space'], config_dir=None)
    return load_search(Config.fromfile(config))[1]


def reorder(space: SearchSpace, names: Sequence[str]) -> SearchSpace:
    """``space`` with its decisions in the order of ``names`` (see
    :meth:`SearchSpace.reordered`)."""
    return space.reordered(names)


# --- the objective ------------------------------------------------------------------------
class TabularObjective:
    """Looks trials up in a :class:`Table` instead of training them.

    ``evaluate(job, heartbeat)`` is a search's evaluator (a row that is not ``ok`` or is
    missing makes the trial FAIL, as its training did; a rung's budget does not change the
    value); calling the object with an ``optuna.Trial`` makes it a plain Optuna objective
    over ``space`` (invalid distillers are pruned).

    Args:
        table: the table.
        space: the search space (needed for the plain Optuna objective).
        param_count: the student's parameter count reported with every trial (NSGA-II's
            second objective; the table's student is fixed, so it is a constant).
    """

    def __init__(self, table: Table, space: Optional[SearchSpace] = None,
                 param_count: float = 0.0):
        self.table = table
        self.space = space
        self.param_count = param_count
        self.calls = 0

    def evaluate(self, job: Job, heartbeat=None) -> TrialResult:
        self.calls += 1
        params = job.params
        row = self.table.lookup(params)
        attrs = dict(param_count=self.param_count)
        if row is None:
            return TrialResult(error=f'not in the table: {params}', attrs=attrs)
        if row['state'] != 'ok':
            return TrialResult(error=f'{row["state"]}: {row.get("error", "")}', attrs=attrs)
        attrs['train_s'] = _float(row.get('train_s'))
        return TrialResult(value=float(row['metric']), attrs=attrs)

    def __call__(self, trial) -> float:
        import optuna
        if self.space is None:
            raise ValueError('TabularObjective needs the space to be an Optuna objective')
        params = {d.name: trial.suggest_categorical(d.name, d.labels)
                  for d in self.space.decisions}
        reason = self.space.check(params)
        if reason is not None:
            raise optuna.TrialPruned(reason)
        result = self.evaluate(Job(trial.number, params))
        if result.error is not None:
            return math.nan  # Optuna marks the trial FAILED
        return result.value


# --- replay ---------------------------------------------------------------------------------
@dataclass
class Run:
    """One replayed search: the values of its budget trials in order (NaN for FAILED)."""
    searcher: str
    seed: int
    values: List[float]
    params: List[Dict[str, Any]] = field(default_factory=list)
    pruned: int = 0
    stop_reason: str = ''


def replay(table: Table, space: SearchSpace, searcher_cfg, seed: int, n_trials: int,
           max_rejects: int = 1000, name: Optional[str] = None,
           param_count: float = 0.0, max_epochs: int = 2) -> Run:
    """Run one searcher (a ``SEARCHERS`` name or dict) against ``table`` for ``n_trials``
    budget trials through :func:`kdzoo.search.run_search`, as ``tools/search.py`` runs it,
    without training, on an in-memory storage. ``max_epochs`` is the proxy schedule that
    successive halving's rungs divide (the table holds one value per distiller)."""
    import copy

    import optuna
    from optuna.trial import TrialState

    from kdzoo.search import build_search, run_search
    from kdzoo.search.settings import SEARCH_DEFAULTS
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = copy.deepcopy(SEARCH_DEFAULTS)
    settings.update(searcher=searcher_cfg, seed=seed, n_trials=n_trials,
                    max_rejects=max_rejects, direction=table.direction)
    objective = TabularObjective(table, space, param_count)
    search = build_search(settings, space, optuna.storages.InMemoryStorage(),
                          objective.evaluate, study_name=f'replay-{seed}',
                          max_epochs=max_epochs)
    stop_reason = run_search(search, report=False, log=None)
    trials = search.study.get_trials(deepcopy=False)
    used = sorted((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)),
                  key=lambda t: t.number)
    values = [t.values[0] if t.state == TrialState.COMPLETE else math.nan for t in used]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    if name is None:
        name = searcher_cfg if isinstance(searcher_cfg, str) else searcher_cfg.get('type')
    return Run(str(name), seed, values, [dict(t.params) for t in used], pruned, stop_reason)


def best_so_far(table: Table, values: Sequence[float], n_trials: int) -> List[float]:
    """Best value after 1..n_trials trials (NaN before the first success; a run that
    stopped early keeps its last best)."""
    s = table.sign
    out, best = [], math.nan
    for t in range(n_trials):
        if t < len(values) and values[t] is not None and math.isfinite(values[t]):
            best = values[t] if not math.isfinite(best) else s * max(s * best, s * values[t])
        out.append(best)
    return out


def regret_curve(table: Table, values: Sequence[float], n_trials: int) -> List[float]:
    """Simple regret after 1..n_trials trials: ``|table best - best found|`` (>= 0); before
    any success, ``|table best - table worst|``."""
    top, worst = table.best, table.worst
    return [abs(top - (b if math.isfinite(b) else worst))
            for b in best_so_far(table, values, n_trials)]


def trials_to_top(table: Table, values: Sequence[float], fraction: float = 0.05,
                  n_trials: Optional[int] = None) -> Optional[int]:
    """The 1-based number of the first trial in the table's top ``fraction`` (``None``: not
    reached within ``n_trials``, default all the values)."""
    limit = len(values) if n_trials is None else min(n_trials, len(values))
    for t in range(limit):
        if table.in_top(values[t], fraction):
            return t + 1
    return None


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile that tolerates ``inf`` (a not-reached run)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    if lo == hi or xs[lo] == xs[hi]:
        return xs[lo]
    if math.isinf(xs[hi]) or math.isinf(xs[lo]):
        return xs[hi] if pos - lo > 0 else xs[lo]
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def seed_noise(table: Table) -> Optional[dict]:
    """How much the training seeds of an averaged table agree (``None`` for one file).

    ``spearman``: the mean over the pairs of seed files of the Spearman rank correlation of
    their values (``spearman_pairs`` lists them); ``mean_abs_diff``: the mean over the pairs
    of the mean absolute difference of a distiller's values; ``row_std_median`` /
    ``row_std_p90``: the sample standard deviation of a distiller over its seeds, median and
    90th percentile over the distillers. Rows that are not ``ok`` are left out.
    """
    from scipy.stats import spearmanr
    rows = [r for r in table.rows.values() if r['state'] == 'ok' and r.get('metric_seeds')]
    if not rows or len(rows[0]['metric_seeds']) < 2:
        return None
    n = len(rows[0]['metric_seeds'])
    pairs, diffs = {}, []
    for i in range(n):
        for j in range(i + 1, n):
            a = [r['metric_seeds'][i] for r in rows]
            b = [r['metric_seeds'][j] for r in rows]
            diffs.append(sum(abs(x - y) for x, y in zip(a, b)) / len(rows))
            pairs[f'{i}-{j}'] = float(spearmanr(a, b)[0])
    stds = []
    for r in rows:
        v = r['metric_seeds']
        mean = sum(v) / n
        stds.append(math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)))
    return dict(seeds=n, rows=len(rows), spearman=sum(pairs.values()) / len(pairs),
                spearman_pairs=pairs, mean_abs_diff=sum(diffs) / len(diffs),
                row_std_median=quantile(stds, 0.5), row_std_p90=quantile(stds, 0.9))


def summarize(table: Table, runs: Sequence[Run], n_trials: int, fraction: float = 0.05,
              checkpoints: Sequence[int] = (10, 20, 40)) -> Dict[str, Any]:
    """Per-searcher statistics of ``runs`` (all of one searcher)."""
    hits = [trials_to_top(table, r.values, fraction, n_trials) for r in runs]
    as_num = [math.inf if h is None else float(h) for h in hits]
    curves = [regret_curve(table, r.values, n_trials) for r in runs]
    out = dict(runs=len(runs), reached=sum(h is not None for h in hits),
               median_to_top=quantile(as_num, 0.5), q25_to_top=quantile(as_num, 0.25),
               q75_to_top=quantile(as_num, 0.75), hits=hits,
               mean_pruned=sum(r.pruned for r in runs) / max(len(runs), 1))
    for c in checkpoints:
        if c <= n_trials:
            at = [curve[c - 1] for curve in curves]
            out[f'median_regret@{c}'] = quantile(at, 0.5)
            out[f'q25_regret@{c}'] = quantile(at, 0.25)
            out[f'q75_regret@{c}'] = quantile(at, 0.75)
    out['median_curve'] = [quantile([c[t] for c in curves], 0.5) for t in range(n_trials)]
    out['q25_curve'] = [quantile([c[t] for c in curves], 0.25) for t in range(n_trials)]
    out['q75_curve'] = [quantile([c[t] for c in curves], 0.75) for t in range(n_trials)]
    return out


def expected_random_hit(n: int, k: int) -> float:
    """Expected trials of uniform sampling without replacement to hit one of ``k`` marked
    among ``n``: ``(n + 1) / (k + 1)``."""
    return (n + 1) / (k + 1)


def random_hit_median(n: int, k: int) -> int:
    """Median trials of uniform sampling without replacement to hit one of ``k`` marked
    among ``n``: the least ``t`` with ``P(first hit <= t) >= 1/2``."""
    miss = 1.0
    for t in range(1, n - k + 2):
        miss *= (n - k - t + 1) / (n - t + 1)
        if 1.0 - miss >= 0.5:
            return t
    return n - k + 1


__all__ = [
    'Table', 'TabularObjective', 'Run', 'load_table', 'load_space', 'reorder', 'replay',
    'summarize',
    'best_so_far', 'regret_curve', 'trials_to_top', 'quantile', 'expected_random_hit',
    'random_hit_median',
    'row_key', 'read_table_file', 'write_header', 'append_rows', 'seed_table',
    'DEFAULT_TABLES',
    'RESULT_COLUMNS'
]
