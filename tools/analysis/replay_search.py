"""Replay kdzoo's searchers against the tabular benchmark (no training).

    python tools/analysis/replay_search.py [--benchmark v1|v2] [--table CSV [CSV ...]]
        [--space-config CONFIG]
        [--searchers random grid mcts nsga2] [--seeds 25] [--n-trials 60]
        [--out-dir work_dirs/search_benchmark] [--plot docs/search_benchmark.png]

Each searcher runs ``--seeds`` times (seeds 0..S-1, or ``--seed-offset``) for ``--n-trials``
budget trials through kdzoo's own search loop, with a table lookup as the objective. A
searcher is a ``SEARCHERS`` name with optional arguments: ``mcts:exploration=0.2``,
``nsga2:population_size=8``. Per searcher it reports the median (and inter-quartile range)
of the trials needed to reach the table's top ``--fraction`` (5 %) and the median simple
regret after 10 / 20 / 40 trials; it writes ``results.md``, ``results.json`` and a plot of
the median regret against the trials.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from scipy.stats import mannwhitneyu  # noqa: E402

from kdzoo.benchmarks.tabular import (BENCHMARKS, DEFAULT_BENCHMARK, default_tables,  # noqa: E402
                                      expected_random_hit, load_space, load_table,
                                      random_hit_median, reorder, replay, seed_noise,
                                      summarize)


def parse_searcher(spec: str):
    """``'mcts:exploration=0.2,reward=metric'`` -> (label, dict(type='mcts', ...))."""
    name, _, args = spec.partition(':')
    cfg = dict(type=name)
    for item in filter(None, args.split(',')):
        key, _, value = item.partition('=')
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value
    return spec, cfg


def fmt_q(median, q25, q75, budget=None, digits=1):
    def one(x):
        if budget is not None and (math.isinf(x) or x > budget):
            return f'>{budget}'
        return f'{x:.{digits}f}'
    return f'{one(median)} [{one(q25)}, {one(q75)}]'


def hit_counts(hits, budget):
    """Trials to the top per run; a run that never reached it counts as ``budget + 1``."""
    return [budget + 1 if h is None else h for h in hits]


def p_fewer_than(hits, reference_hits, budget):
    """One-sided Mann-Whitney U test of "fewer trials to the top than the reference"."""
    return float(mannwhitneyu(hit_counts(hits, budget), hit_counts(reference_hits, budget),
                              alternative='less').pvalue)


def fmt_p(p: float) -> str:
    return f'{p:.3f}' if p >= 0.001 else f'{p:.0e}'


def describe_table(table, fraction) -> list:
    """Markdown lines: the best distillers, and the mean value per choice of every decision
    with how many of the top ``fraction`` distillers have it."""
    ok = [r for r in table.rows.values() if r['state'] == 'ok']
    sign = table.sign
    best = sorted(ok, key=lambda r: -sign * r['metric'])[:4]
    lines = ['', 'Best distillers: ' + '; '.join(
        ' + '.join(str(r[n]) for n in table.names) + f' ({r["metric"]:.2f})' for r in best)
        + '.', '', f'| decision | mean value per choice (distillers of the top '
        f'{fraction:.0%} with it) |', '| --- | --- |']
    for name in table.names:
        cells = []
        for label in dict.fromkeys(r[name] for r in ok):
            values = [r['metric'] for r in ok if r[name] == label]
            top = sum(table.in_top(v, fraction) for v in values)
            cells.append(f'{label}: {sum(values) / len(values):.1f} ({top})')
        lines.append(f'| {name} | ' + ', '.join(cells) + ' |')
    return lines


def markdown(table, results, args, seconds) -> str:
    s = table.summary()
    n_ok = len(table.ok_values)
    k_top = sum(table.in_top(v, args.fraction) for v in table.ok_values)
    lines = [
        f'Table: {len(table)} distillers ({s["states"]}), metric {table.worst:.2f} .. '
        f'{table.best:.2f}; top {args.fraction:.0%}: value >= {s["top5_threshold"]:.2f} '
        f'({sum(table.in_top(v, args.fraction) for v in table.ok_values)} distillers).',
        f'{args.seeds} seeds (seeds {args.seed_offset}..{args.seed_offset + args.seeds - 1}) '
        f'x {args.n_trials} trials per searcher; replayed in {seconds:.0f} s.',
        f'Uniform sampling without replacement (exact): mean (n+1)/(k+1) = '
        f'{expected_random_hit(n_ok, k_top):.1f}, median {random_hit_median(n_ok, k_top)} '
        f'trials to reach the top {args.fraction:.0%}.',
    ]
    noise = seed_noise(table)
    if noise:
        lines.append(f'Values: the mean of {noise["seeds"]} training seeds; two seeds differ by '
                     f'{noise["mean_abs_diff"]:.2f} points on average (Spearman '
                     f'{noise["spearman"]:.2f}); a distiller\'s std over its seeds: median '
                     f'{noise["row_std_median"]:.2f}, 90th percentile {noise["row_std_p90"]:.2f}.')
    lines += describe_table(table, args.fraction)
    # p-values against random search and, when replayed, Optuna's TPE (the generic
    # optimiser a user would pick instead)
    references = [name for name in ('random', 'tpe') if name in results]
    lines += [
        '',
        f'| searcher | reached top {args.fraction:.0%} | trials to top {args.fraction:.0%}: '
        'median [IQR] | mean | '
        + ''.join(f'p (fewer than {name}) | ' for name in references)
        + 'regret @10 | regret @20 | regret @40 | pruned draws / run |',
        '| --- | --- | --- | --- | ' + '--- | ' * len(references) + '--- | --- | --- | --- |',
    ]
    for label, r in results.items():
        as_num = hit_counts(r['hits'], args.n_trials)
        row = [f'`{label}`', f'{r["reached"]}/{r["runs"]}',
               fmt_q(r['median_to_top'], r['q25_to_top'], r['q75_to_top'], args.n_trials),
               f'{sum(as_num) / len(as_num):.1f}']
        for name in references:
            row.append('-' if label == name else
                       fmt_p(p_fewer_than(r['hits'], results[name]['hits'], args.n_trials)))
        for c in (10, 20, 40):
            if f'median_regret@{c}' in r:
                row.append(fmt_q(r[f'median_regret@{c}'], r[f'q25_regret@{c}'],
                                 r[f'q75_regret@{c}'], digits=2))
            else:
                row.append('-')
        row.append(f'{r["mean_pruned"]:.1f}')
        lines.append('| ' + ' | '.join(row) + ' |')
    lines.append('')
    lines.append('Trials to the top: a run that did not reach it counts as more than the '
                 'budget (as budget + 1 in the mean and the one-sided Mann-Whitney test). '
                 'Regret: table best minus best found, in accuracy points; '
                 'median [25th, 75th percentile] over the seeds.')
    return '\n'.join(lines) + '\n'


def plot(results, path, n_trials, fraction, only=None):
    """Left: median simple regret (band: IQR); right: share of the runs that reached the
    top ``fraction`` within t trials."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = list(range(1, n_trials + 1))
    for label, r in results.items():
        if only and label not in only:
            continue
        if len(label) > 24:  # long argument lists: the searcher's name only
            label = label.split(':')[0] + ' (args)'
        line, = ax.plot(xs, r['median_curve'], label=label, lw=1.8)
        ax.fill_between(xs, r['q25_curve'], r['q75_curve'], color=line.get_color(),
                        alpha=0.08, lw=0)
        hits = r['hits']
        ax2.plot(xs, [sum(h is not None and h <= t for h in hits) / len(hits) for t in xs],
                 color=line.get_color(), label=label, lw=1.8)
    ax.set_xlabel('trials (table look-ups)')
    ax.set_ylabel('simple regret (top-1 points)')
    ax.set_yscale('symlog', linthresh=0.5)
    ax.set_title('median regret (band: IQR)')
    ax2.set_xlabel('trials (table look-ups)')
    ax2.set_ylabel(f'share of runs in the top {fraction:.0%}')
    ax2.set_title(f'reached the top {fraction:.0%} within t trials')
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax2.legend(loc='lower right', fontsize='small')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def protocol_card(table, args, seconds: float) -> dict:
    """How the table's numbers were made (its files' header lines) and how they were
    replayed: the protocol card of the numbers in docs/search_benchmark.md."""
    files = args.table or [osp.relpath(p, ROOT) for p in default_tables(args.benchmark)]
    return dict(
        what='Searchers replayed on the tabular benchmark (tools/analysis/replay_search.py)',
        table=dict(files=files, rows=len(table),
                   space=table.meta('space:'),
                   proxy=table.meta('proxy:'),
                   validation=table.meta('validation:'),
                   metric=table.meta('metric:'),
                   teacher=table.meta('teacher:'),
                   value='mean over the files (one per training seed)',
                   seed_noise=seed_noise(table)),
        replay=dict(searchers=args.searchers, n_trials=args.n_trials, fraction=args.fraction,
                    order=args.order),
        seeds=list(range(args.seed_offset, args.seed_offset + args.seeds)),
        reported='median (IQR) over searcher seeds of the trials to reach the top fraction; '
                 'median simple regret after 10 / 20 / 40 trials',
        device=f'CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)',
        seconds=round(seconds, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--benchmark', default=DEFAULT_BENCHMARK,
                        choices=sorted(BENCHMARKS),
                        help='the shipped table (its seed files and space config) replayed '
                        'when --table / --space-config are not given')
    parser.add_argument('--table', nargs='+', default=None, metavar='CSV',
                        help='table file(s); several are averaged (one per training seed); '
                        'default: the seed files of --benchmark')
    parser.add_argument('--space-config', default=None,
                        help='default: the space config of --benchmark')
    parser.add_argument('--searchers', nargs='+', default=['random', 'grid', 'mcts', 'nsga2'])
    parser.add_argument('--seeds', type=int, default=25)
    parser.add_argument('--seed-offset', type=int, default=0)
    parser.add_argument('--n-trials', type=int, default=60)
    parser.add_argument('--fraction', type=float, default=0.05)
    parser.add_argument('--order', nargs='+', default=None, metavar='DECISION',
                        help='put these decisions first in the tree (e.g. kd0.tau); only MCTS '
                        'depends on the order')
    parser.add_argument('--out-dir', default='work_dirs/search_benchmark')
    parser.add_argument('--plot', default=None, help='default: OUT_DIR/regret.png')
    parser.add_argument('--card', default=None, metavar='JSON',
                        help='also write the protocol card of the reported numbers here '
                        '(e.g. docs/search_benchmark_card.json)')
    parser.add_argument('--plot-only', nargs='+', default=None, metavar='SEARCHER',
                        help='searchers drawn in the plot (default: all)')
    args = parser.parse_args(argv)

    space = load_space(args.space_config, version=args.benchmark)
    table = load_table(args.table, space, version=args.benchmark)
    if args.order:
        space = reorder(space, args.order)
        print(f'[replay] decision order: {space.names}')
    missing = table.missing(space)
    if missing:
        print(f'[replay] warning: {len(missing)} valid distillers have no row (they FAIL)')
    student = table.meta('student:')  # NSGA-II's second objective: constant here
    param_count = float(student.split()[0]) if student else 0.0
    start = time.time()
    results, raw = {}, {}
    for spec in args.searchers:
        label, cfg = parse_searcher(spec)
        t0 = time.time()
        runs = [replay(table, space, dict(cfg), seed, args.n_trials, name=label,
                       param_count=param_count)
                for seed in range(args.seed_offset, args.seed_offset + args.seeds)]
        results[label] = summarize(table, runs, args.n_trials, args.fraction)
        raw[label] = [dict(seed=r.seed, values=r.values, pruned=r.pruned,
                           stop=r.stop_reason) for r in runs]
        r = results[label]
        short = [len(run.values) for run in runs if len(run.values) < args.n_trials]
        print(f'[replay] {label:<24} top-{args.fraction:.0%} in '
              f'{fmt_q(r["median_to_top"], r["q25_to_top"], r["q75_to_top"], args.n_trials)}'
              f' trials ({r["reached"]}/{r["runs"]} reached); regret@10/20/40 '
              f'{r.get("median_regret@10", math.nan):.2f}/'
              f'{r.get("median_regret@20", math.nan):.2f}/'
              f'{r.get("median_regret@40", math.nan):.2f}; {time.time() - t0:.1f} s'
              + (f'; {len(short)} runs stopped early' if short else ''), flush=True)
    seconds = time.time() - start
    text = markdown(table, results, args, seconds)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(dict(summary={k: {kk: vv for kk, vv in v.items()}
                                for k, v in results.items()},
                       runs=raw, args=vars(args)), f, indent=1, default=str)
    if args.card:
        with open(args.card, 'w') as f:
            json.dump(protocol_card(table, args, seconds), f, indent=1)
    plot_path = args.plot or osp.join(args.out_dir, 'regret.png')
    plot(results, plot_path, args.n_trials, args.fraction, args.plot_only)
    print(text)
    random_med = results.get('random', {}).get('median_to_top')
    if random_med is not None:
        for label, r in results.items():
            if label != 'random':
                verdict = 'fewer' if r['median_to_top'] < random_med else 'NOT fewer'
                print(f'[replay] {label}: {verdict} trials than random to the top '
                      f'{args.fraction:.0%} (median {r["median_to_top"]} vs {random_med})')
    print(f'[replay] wrote {args.out_dir}/results.md, results.json and {plot_path}')
    return results


if __name__ == '__main__':
    main()
