"""Evidence runs: one ordinary ``tools/train.py CONFIG --cfg-options ...`` call per number,
cached, so the evidence scripts (``tools/analysis/*_fmnist.py``) continue where they
stopped and every number can be re-run from ``RUN_DIR/command.txt``."""
import fcntl
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def last_metric(work_dir: str, metric: str = 'accuracy/top1') -> float:
    """The last logged ``metric`` of a run (MMEngine's ``scalars.json``)."""
    value = None
    for file in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(file) as f:
            for line in f:
                record = json.loads(line)
                if metric in record:
                    value = record[metric]
    if value is None:
        raise RuntimeError(f'{work_dir}: no {metric} logged')
    return float(value)


def train_run(run_dir: str, config: str, options: Dict[str, object],
              metric: str = 'accuracy/top1', threads: int = 1) -> dict:
    """Train ``config`` with ``options`` in ``run_dir`` (one process, ``threads`` threads);
    ``dict(value, seconds)``, cached in ``run_dir/result.json``."""
    result_file = osp.join(run_dir, 'result.json')
    os.makedirs(run_dir, exist_ok=True)
    # two evidence scripts may share runs: the second waits for the first's result
    with open(osp.join(run_dir, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if osp.isfile(result_file):
            with open(result_file) as f:
                return json.load(f)
        return _train(run_dir, config, options, metric, threads, result_file)


def _train(run_dir: str, config: str, options: Dict[str, object], metric: str,
           threads: int, result_file: str) -> dict:
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', run_dir, '--cfg-options']
    cmd += [f'{k}={v}' for k, v in options.items()]
    with open(osp.join(run_dir, 'command.txt'), 'w') as f:
        f.write(' '.join(cmd) + '\n')
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'{run_dir} failed:\n{proc.stderr[-3000:]}')
    result = dict(value=last_metric(run_dir, metric), seconds=round(time.time() - start, 1))
    with open(result_file, 'w') as f:
        json.dump(result, f)
    return result


def evaluate_checkpoint(run_dir: str, config: str, checkpoint: str,
                        metric: str = 'accuracy/top1', threads: int = 1) -> float:
    """``metric`` of ``checkpoint`` on ``config``'s test split (``tools/test.py``), cached
    in ``run_dir/test_result.json``: the accuracy a card reports for a teacher that was
    trained elsewhere (it selects nothing)."""
    result_file = osp.join(run_dir, 'test_result.json')
    os.makedirs(run_dir, exist_ok=True)
    if not osp.isfile(result_file):
        cmd = [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', run_dir,
               '--out', result_file]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    with open(result_file) as f:
        return float(json.load(f)[metric])


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    values = list(values)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def method_rows(results: Dict[tuple, dict], methods: Dict[str, tuple],
                names: Sequence[str], seeds: Sequence[int]) -> list:
    """One row per method name: its seeds' values, mean and std (2 decimals), seconds.
    ``results`` maps (method, seed) to a :func:`train_run` result, ``methods`` maps a name
    to (config, description)."""
    rows = []
    for name in names:
        values = [results[(name, s)]['value'] for s in seeds]
        mean, std = mean_std(values)
        rows.append(dict(method=name, what=methods[name][1], config=methods[name][0],
                         values=values, mean=round(mean, 2), std=round(std, 2),
                         seconds=[results[(name, s)]['seconds'] for s in seeds]))
    return rows


def write_evidence(rows: list, protocol: dict, work_dir: str, docs: str, stem: str,
                   metric_label: str, script: str) -> str:
    """Write WORK_DIR/results.json, DOCS/STEM_card.json (the protocol card) and
    DOCS/STEM_table.md (mean +- std and the difference to the 'vanilla' row); the table."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(dict(protocol=protocol, rows=rows), f, indent=1)
    with open(osp.join(docs, f'{stem}_card.json'), 'w') as f:
        json.dump(protocol, f, indent=1)
    vanilla = next((r for r in rows if r['method'] == 'vanilla'), None)
    lines = [f'| method | terms | {metric_label} | vs vanilla |', '| --- | --- | --- | --- |']
    for r in rows:
        delta = '' if vanilla is None or r is vanilla else f"{r['mean'] - vanilla['mean']:+.2f}"
        lines.append(f"| {r['method']} | {r['what']} | {r['mean']:.2f} +- {r['std']:.2f} | "
                     f'{delta} |')
    table = '\n'.join(lines)
    with open(osp.join(docs, f'{stem}_table.md'), 'w') as f:
        f.write(f'<!-- written by {script}; protocol: {stem}_card.json -->\n{table}\n')
    return table


__all__ = ['train_run', 'evaluate_checkpoint', 'last_metric', 'mean_std', 'method_rows',
           'write_evidence']
