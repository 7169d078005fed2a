"""Results of a search: ``results.csv`` / ``results.md``, the plots of
:mod:`kdzoo.search.plots`, ``best_config.py`` and ``best_full_config.py``; successive
halving adds its rung columns and ``successive_halving.json``.
"""
import csv
import io
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from kdzoo.utils.files import atomic_write
from .operations import (ELIMINATED_ATTR, PROBABILITIES_ATTR, SCHEDULE_ATTR, is_suppressed,
                         role_of)
from .plots import plot_halving, plot_progress
from .space import SearchSpace
from .trials import counts_as_visit, trial_params


def _note(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    if trial.state == TrialState.PRUNED:
        return attrs.get('pruned_reason', 'pruned')
    notes = []
    if 'retry_of' in attrs:
        notes.append(f'retry of trial {attrs["retry_of"]}')
    if attrs.get('enqueued'):
        notes.append('enqueued')
    if trial.state == TrialState.FAIL:
        error = attrs.get('error', 'failed').strip()
        notes.append(error.splitlines()[0] if error else 'failed')
    for key, value in trial.system_attrs.items():  # Optuna's trial.set_constraint values
        if key.startswith('constraints:') and isinstance(value, (int, float)) and value > 0:
            notes.append(f'infeasible: {key.split(":", 1)[1]} exceeded by {value:g}')
    return '; '.join(notes)


def result_rows(study: Study, space: SearchSpace, metric: str,
                extra_objectives: Sequence[str] = ()) -> List[Dict]:
    """One row per trial: trial, state, metric, extra objectives, param_count, duration_s,
    the parameters, note."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = dict(trial=t.number, state=t.state.name)
        values = t.values if t.state == TrialState.COMPLETE and t.values else []
        row[metric] = values[0] if values else ''
        for i, name in enumerate(extra_objectives):
            row[name] = values[i + 1] if len(values) > i + 1 else ''
        if 'param_count' not in row:
            row['param_count'] = t.user_attrs.get('param_count', '')
        row['duration_s'] = t.user_attrs.get('duration_s', '')
        params = trial_params(t)
        for name in space.names:
            row[name] = params.get(name, '')
        row['note'] = _note(t)
        rows.append(row)
    return rows


def write_tables(rows: List[Dict], work_dir: str, best: Optional[int] = None) -> None:
    """``results.csv`` and ``results.md`` (the best trial marked with ``*``)."""
    if not rows:
        return
    columns = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(osp.join(work_dir, 'results.csv'), buf.getvalue())

    def cell(value):
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e12:
            return str(int(value))
        if isinstance(value, float):
            return f'{value:.4g}' if abs(value) >= 1e4 or (0 < abs(value) < 1e-3) \
                else f'{value:.4f}'.rstrip('0').rstrip('.')
        return str(value).replace('|', '\\|').replace('\n', ' ')

    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        cells = [cell(row[c]) for c in columns]
        if row['trial'] == best:
            cells[0] = f'**{cells[0]}** *'
        lines.append('| ' + ' | '.join(cells) + ' |')
    if best is not None:
        lines += ['', f'`*` best trial: {best} (its config: best_config.py)']
    atomic_write(osp.join(work_dir, 'results.md'), '\n'.join(lines) + '\n')


def write_report(study: Study, space: SearchSpace, searcher, work_dir: str, metric: str,
                 runner=None) -> Optional[FrozenTrial]:
    """Tables, plots and the best configs; returns the best trial (or ``None``).

    ``best_config.py`` is a copy of the best trial's config (the proxy run: re-running it
    reproduces the trial's metric); ``best_full_config.py`` (with ``runner``) applies the
    same choices to the base config without the proxy settings: the full training.
    """
    os.makedirs(work_dir, exist_ok=True)
    best = searcher.best_trial(study)
    rows = result_rows(study, space, metric, getattr(searcher, 'extra_objectives', ()))
    write_tables(rows, work_dir, best.number if best is not None else None)
    plot_progress(study, osp.join(work_dir, 'progress.png'), metric)
    searcher.plots(study, space, work_dir, metric)
    if best is None:
        return None
    # Only the trial's own config file under this work dir: a path read from a (shared,
    # writable by others) storage is never trusted.
    work = best.user_attrs.get('sh_candidate', best.number)
    source = osp.join(work_dir, 'trials', str(int(work)), 'config.py')
    if osp.isfile(source):
        with open(source) as f:
            atomic_write(osp.join(work_dir, 'best_config.py'), f.read())
    if runner is not None and runner.full_cfg is not None:
        cfg = runner.make_config(best.params, base=runner.full_cfg)
        cfg.work_dir = osp.join(work_dir, 'best_full')  # its own run, not the search's
        runner.write_config(cfg, osp.join(work_dir, 'best_full_config.py'),
                            f'the choices of trial {best.number} ({metric}='
                            f'{best.values[0]:.4f} in the proxy run) on the full schedule\n'
                            + runner.describe(best.number, best.params))
    return best


def add_test_result(work_dir: str, trial: int, metric: str, metrics: Dict) -> None:
    """Label the two numbers of the best trial in ``results.csv`` / ``results.md``: its
    validation value (what the search selected on) and its test value (read once, here)."""
    key = metric if metric in metrics else next(
        (k for k in metrics if k.rsplit('/', 1)[-1] == metric.rsplit('/', 1)[-1]), None)
    value = metrics.get(key) if key is not None else None
    path = osp.join(work_dir, 'results.csv')
    if osp.isfile(path):
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f))
        column = f'test {metric} (best only)'
        for row in rows:
            row[column] = value if str(row['trial']) == str(trial) else ''
        if rows:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            atomic_write(path, buf.getvalue())
    md = osp.join(work_dir, 'results.md')
    if osp.isfile(md):
        with open(md) as f:
            text = f.read()
        text += (f'\nThe `{metric}` column is measured on the validation split carved from the '
                 f'training data (search.validation): what the search selected on. Trial '
                 f'{trial} on the test split, evaluated once after the search: '
                 f'`{metric}` = {value} (best_test.json).\n')
        atomic_write(md, text)


# --- successive halving -----------------------------------------------------------------------
def rung_summary(study: Study) -> List[dict]:
    """Per bracket and rung: the budget and each trial's candidate, state, value and
    outcome (``promoted``, ``eliminated``, ``complete``, ``suppressed``, ``failed``,
    ``running``, ``waiting``, ``interrupted``)."""
    trials = study.get_trials(deepcopy=False)
    eliminated = set(study.user_attrs.get(ELIMINATED_ATTR, []))
    seen = defaultdict(set)
    for t in trials:
        role = role_of(t)
        if role is not None and counts_as_visit(t):
            seen[(role['sh_bracket'], role['sh_candidate'])].add(role['sh_rung'])
    groups = defaultdict(list)
    for t in trials:
        role = role_of(t)
        if role is None:
            continue
        if not counts_as_visit(t):
            outcome = 'interrupted' if t.state == TrialState.FAIL else 'pruned'
        elif t.state == TrialState.COMPLETE:
            later = any(r > role['sh_rung']
                        for r in seen[(role['sh_bracket'], role['sh_candidate'])])
            outcome = ('promoted' if later else
                       'eliminated' if role['sh_candidate'] in eliminated else 'complete')
        elif is_suppressed(t):
            outcome = 'suppressed'
        else:
            outcome = t.state.name.lower().replace('fail', 'failed')
        groups[(role['sh_bracket'], role['sh_rung'])].append(dict(
            trial=t.number, candidate=role['sh_candidate'], state=t.state.name,
            value=t.values[0] if t.state == TrialState.COMPLETE else None, outcome=outcome,
            reason=(t.user_attrs.get('suppressed') or {}).get('reason')))
    out = []
    for (bracket, rung), rows in sorted(groups.items()):
        budget = next((trials[r['trial']].user_attrs['sh_budget'] for r in rows), None)
        out.append(dict(bracket=bracket, rung=rung, budget=budget, trials=rows))
    return out


def write_halving_report(study: Study, space: SearchSpace, searcher, work_dir: str,
                         metric: str) -> None:
    """Adds the rung columns to ``results.csv`` / ``results.md`` and writes
    ``successive_halving.json`` and ``halving.png``."""
    summary = rung_summary(study)
    outcome = {row['trial']: row['outcome'] for rung in summary for row in rung['trials']}
    rows = []
    trials = study.get_trials(deepcopy=False)
    for row in result_rows(study, space, metric):
        role = role_of(trials[row['trial']]) or {}
        new = {}
        for key, value in row.items():
            new[key] = value
            if key == 'state':
                for column, attr in (('bracket', 'sh_bracket'), ('rung', 'sh_rung'),
                                     ('budget', 'sh_budget'), ('candidate', 'sh_candidate')):
                    new[column] = role.get(attr, '')
                new['outcome'] = outcome.get(row['trial'], '')
        rows.append(new)
    best = searcher.best_trial(study)
    write_tables(rows, work_dir, best.number if best is not None else None)
    data = dict(schedule=study.user_attrs.get(SCHEDULE_ATTR),
                probabilities=study.user_attrs.get(PROBABILITIES_ATTR),
                eliminated=study.user_attrs.get(ELIMINATED_ATTR, []), rungs=summary,
                best_trial=best.number if best is not None else None)
    atomic_write(osp.join(work_dir, 'successive_halving.json'),
                 json.dumps(data, indent=1, default=str) + '\n')
    plot_halving(study, summary, osp.join(work_dir, 'halving.png'), metric)
