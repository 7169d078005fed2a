"""Results of a search: ``results.csv`` / ``results.md`` and plots (matplotlib, Agg).

- ``progress.png``: the metric of each trial (failed trials marked at the bottom) and the
  best-so-far line;
- ``mcts_visits.png`` (MCTS): the tree's visits per choice of the first decisions (the
  first panel is the root's children), coloured by mean reward;
- ``pareto.png`` (NSGA-II): metric against the student's parameter count, the Pareto front
  and the budget.
"""
import csv
import io
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .samplers import INTERRUPTED_KEY, Node
from .space import SearchSpace


def _atomic_write(path: str, text: str) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


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
        params = t.params or t.system_attrs.get('fixed_params', {})
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
    _atomic_write(osp.join(work_dir, 'results.csv'), buf.getvalue())

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
    _atomic_write(osp.join(work_dir, 'results.md'), '\n'.join(lines) + '\n')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_progress(study: Study, path: str, metric: str) -> None:
    """The metric per trial and the best so far."""
    plt = _pyplot()
    maximize = study.directions[0] == StudyDirection.MAXIMIZE
    fig, ax = plt.subplots(figsize=(7, 4))
    done, best_x, best_y, best = [], [], [], None
    failed = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            v = t.values[0]
            done.append((t.number, v))
            if best is None or (v > best if maximize else v < best):
                best = v
            best_x.append(t.number)
            best_y.append(best)
        elif t.state == TrialState.FAIL and not t.system_attrs.get(INTERRUPTED_KEY):
            failed.append(t.number)
    last = max([n for n, _ in done] + failed + [0])
    if done:
        ax.scatter(*zip(*done), s=18, label='trial', color='tab:blue', zorder=3)
        ax.step(best_x + [last], best_y + [best_y[-1]], where='post', color='tab:orange',
                label='best so far')
    if failed:  # at the bottom of the axes, whatever the metric's range
        ax.scatter(failed, [0.03] * len(failed), marker='x', color='tab:red',
                   label='failed', zorder=3, transform=ax.get_xaxis_transform())
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.5, last + 0.5)
    ax.set_xlabel('trial')
    ax.set_ylabel(metric)
    ax.set_title(f'search progress ({study.study_name})')
    ax.grid(alpha=0.3)
    if done or failed:
        ax.legend(loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_mcts_visits(space: SearchSpace, root: Node, path: str, max_panels: int = 6) -> None:
    """Visits per choice of the first decisions. Panel 0 is the root's children; panel d
    sums the visits of all depth-d nodes per choice."""
    plt = _pyplot()
    from matplotlib import cm, colors
    panels = space.decisions[:max_panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.6 + 1.4 * len(panels)),
                             squeeze=False)
    norm = colors.Normalize(0.0, 1.0)
    level = [root]
    for depth, (decision, ax) in enumerate(zip(panels, axes[:, 0])):
        visits = [0] * len(decision.labels)
        reward = [0.0] * len(decision.labels)
        nxt = []
        for node in level:
            for index, child in node.children.items():
                visits[index] += child.visits
                reward[index] += child.reward
                nxt.append(child)
        level = nxt
        means = [r / v if v else 0.0 for r, v in zip(reward, visits)]
        labels = [str(label) for label in decision.labels]
        ax.barh(range(len(labels)), visits, color=[cm.viridis(norm(m)) for m in means])
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f'{decision.name}' + (' (root children)' if depth == 0 else ''),
                     fontsize=9)
        for y, (v, m) in enumerate(zip(visits, means)):
            if v:
                ax.text(v, y, f' {v} (R/N={m:.2f})', va='center', fontsize=7)
    from matplotlib.ticker import MaxNLocator
    for ax in axes[:, 0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel('visits (colour: mean reward)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pareto(study: Study, path: str, metric: str,
                param_budget: Optional[float] = None) -> None:
    """NSGA-II: metric vs parameter count, with the Pareto front."""
    plt = _pyplot()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials} if complete else set()
    fig, ax = plt.subplots(figsize=(6, 4))
    for on_front, colour, label in ((False, 'tab:blue', 'trial'),
                                    (True, 'tab:orange', 'Pareto front')):
        pts = [(t.values[1], t.values[0]) for t in complete if (t.number in front) == on_front]
        if pts:
            ax.scatter(*zip(*pts), s=20, color=colour, label=label, zorder=3)
    if param_budget is not None:
        ax.axvline(param_budget, color='tab:red', ls='--', label='param budget')
    ax.set_xlabel('student parameters')
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    source = best.user_attrs.get('config') or osp.join(work_dir, 'trials', str(best.number),
                                                       'config.py')
    if osp.isfile(source):
        with open(source) as f:
            _atomic_write(osp.join(work_dir, 'best_config.py'), f.read())
    if runner is not None and runner.full_cfg is not None:
        cfg = runner.make_config(best.params, base=runner.full_cfg)
        runner.write_config(cfg, osp.join(work_dir, 'best_full_config.py'),
                            f'the choices of trial {best.number} ({metric}='
                            f'{best.values[0]:.4f} in the proxy run) on the full schedule\n'
                            + runner.describe(best.number, best.params))
    return best
