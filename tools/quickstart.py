"""The main job on the built-in default data (Fashion-MNIST), on CPU in minutes.

1. trains the teacher (or reuses it when its checkpoint exists),
2. trains the student alone (vanilla) and 3. the same student with KD, on the same schedule,
then evaluates each on Fashion-MNIST's test set with ``tools/test.py`` (the KD student from
its student-only checkpoint, through the plain student config) and prints the accuracies.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--retrain-teacher]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    teacher='configs/fashion_mnist/teacher_fmnist.py',
    student='configs/fashion_mnist/student_fmnist.py',
    kd='configs/fashion_mnist/kd_fmnist.py',
)


def run(cmd, log_path, echo=('Epoch(train)', 'Epoch(val)')):
    """Run ``cmd``, keep its whole output in ``log_path``, show the progress lines."""
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if any(key in line for key in echo):
                print('   ', line.rstrip()[-150:], flush=True)
        proc.wait()
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-30:])
        sys.exit(f'{tail}\ncommand failed ({proc.returncode}): {" ".join(cmd)}\n'
                 f'whole log: {log_path}')


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(name, work_dir, extra=()):
    os.makedirs(work_dir, exist_ok=True)
    cmd = [sys.executable, 'tools/train.py', CONFIGS[name], '--work-dir', work_dir, *extra]
    run(cmd, osp.join(work_dir, 'train_output.log'))


def evaluate(config, checkpoint, work_dir):
    out = osp.join(work_dir, 'test_metrics.json')
    cmd = [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', work_dir,
           '--out', out]
    run(cmd, osp.join(work_dir, 'test_output.log'), echo=())
    with open(out) as f:
        return json.load(f)['accuracy/top1']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--retrain-teacher', action='store_true')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    dirs = {name: osp.join(work, name) for name in CONFIGS}
    start = time.time()

    teacher_done = osp.exists(osp.join(dirs['teacher'], 'last_checkpoint'))
    if teacher_done and not args.retrain_teacher:
        print(f'[1/3] reusing the teacher in {dirs["teacher"]}', flush=True)
    else:
        print('[1/3] training the teacher', flush=True)
        train('teacher', dirs['teacher'])
    teacher_ckpt = last_checkpoint(dirs['teacher'])

    print('[2/3] training the vanilla student', flush=True)
    train('student', dirs['student'])
    print('[3/3] training the KD student', flush=True)
    train('kd', dirs['kd'], ['--cfg-options', f'model.teacher_checkpoint={teacher_ckpt}'])

    print('evaluating on the Fashion-MNIST test set', flush=True)
    results = {
        'teacher': evaluate(CONFIGS['teacher'], teacher_ckpt, dirs['teacher']),
        'vanilla student': evaluate(CONFIGS['student'], last_checkpoint(dirs['student']),
                                    dirs['student']),
        'KD student': evaluate(CONFIGS['student'],
                               osp.join(dirs['kd'], 'student_latest.pth'), dirs['kd']),
    }
    print(f'\nFashion-MNIST test accuracy (top-1, %), {time.time() - start:.0f} s in all')
    for name, acc in results.items():
        print(f'  {name:<16} {acc:6.2f}')
    gain = results['KD student'] - results['vanilla student']
    print(f'  KD gain          {gain:+6.2f}')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
