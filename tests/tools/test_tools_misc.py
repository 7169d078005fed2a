"""print_modules and benchmark_step run on real configs and report what they promise."""
import subprocess
import sys

ROOT_CMD = dict(capture_output=True, text=True, timeout=600)


def test_print_modules_lists_paths_and_shapes():
    proc = subprocess.run(
        [sys.executable, 'tools/misc/print_modules.py', 'configs/fashion_mnist/kd_fmnist.py',
         '--shape', '1', '28', '28', '--cfg-options', 'model.teacher_checkpoint=None'],
        **ROOT_CMD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert '== student ==' in out and '== teacher ==' in out
    student, teacher = out.split('== teacher ==')
    assert 'backbone.layer3' in student and '(2, 32, 7, 7)' in student  # resnet8, width 0.5
    assert 'backbone.layer3' in teacher and '(2, 64, 7, 7)' in teacher  # resnet20
    assert 'backbone.fc' in teacher and '(2, 10)' in teacher


def test_benchmark_step_reports_the_three_timings(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark_step.py',
         'configs/fashion_mnist/kd_fmnist.py', '--shape', '1', '28', '28', '--batch-size',
         '8', '--reps', '2', '--warmup', '1', '--out', str(out),
         '--cfg-options', 'model.teacher_checkpoint=None'], **ROOT_CMD)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    result = json.loads(out.read_text())
    for key in ('student_fwd_bwd_ms', 'teacher_fwd_ms', 'distill_step_ms'):
        assert result[key] > 0
    ratio = result['distill_step_ms'] / (result['student_fwd_bwd_ms'] + result['teacher_fwd_ms'])
    assert abs(result['ratio'] - ratio) < 1e-9
    assert 'c / (a + b)' in proc.stdout
