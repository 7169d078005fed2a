"""Plots of a search (matplotlib, Agg backend).

- ``progress.png``: the metric of each trial (failed trials marked at the bottom) and the
  best-so-far line;
- ``mcts_visits.png`` (MCTS): the tree's visits per choice of the first decisions (the
  first panel is the root's children), coloured by mean reward;
- ``pareto.png`` (NSGA-II): metric against the student's parameter count, the Pareto front
  and the budget;
- ``halving.png`` (successive halving): each candidate's metric against its budget.
"""
from collections import defaultdict
from typing import List, Optional

from optuna.study import Study, StudyDirection
from optuna.trial import TrialState

from .samplers import Node
from .space import SearchSpace
from .trials import INTERRUPTED_KEY


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


def plot_halving(study: Study, summary: List[dict], path: str, metric: str) -> None:
    """The metric of each candidate against its budget (one line per candidate);
    suppressed / failed evaluations as red x at the bottom."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = defaultdict(list)
    failed = []
    budgets = set()
    for rung in summary:
        budgets.add(rung['budget'])
        for row in rung['trials']:
            if row['value'] is not None:
                lines[(rung['bracket'], row['candidate'])].append((rung['budget'], row['value']))
            elif row['outcome'] in ('suppressed', 'failed'):
                failed.append(rung['budget'])
    for (bracket, candidate), points in sorted(lines.items()):
        points.sort()
        ax.plot(*zip(*points), marker='o', ms=4, lw=1, alpha=0.8)
        ax.annotate(str(candidate), points[-1], fontsize=6, xytext=(3, 0),
                    textcoords='offset points')
    if failed:
        ax.scatter(failed, [0.03] * len(failed), marker='x', color='tab:red',
                   label='suppressed / failed', zorder=3, transform=ax.get_xaxis_transform())
        ax.legend(loc='best')
    budgets.discard(None)
    if budgets:
        ax.set_xticks(sorted(budgets))
    ax.set_xlabel('budget (epochs)')
    ax.set_ylabel(metric)
    ax.set_title(f'successive halving ({study.study_name}); labels: candidate')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
