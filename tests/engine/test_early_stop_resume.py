"""EarlyStopOnGoodEnoughHook keeps its patience count across a resume (each successive-
halving rung resumes in a new process), including the validation that MMEngine runs after
the checkpoint it resumes from."""
import json

from kdzoo.engine import EarlyStopOnGoodEnoughHook

from engine_helpers import ROOT, data_options, fake_runner, train

VALUES = [50.0, 60.0, 59.0, 58.0, 70.0, 69.0, 68.0]  # patience 2: stop after epoch 4


def run_epochs(hook, runner, epochs, checkpoints):
    """MMEngine's order per epoch: train, save the checkpoint, validate."""
    for epoch in epochs:
        runner.epoch = runner.iter = epoch  # one iteration per epoch
        checkpoint = dict(meta=dict(epoch=epoch, iter=epoch))
        hook.before_save_checkpoint(runner, checkpoint)
        checkpoints[epoch] = checkpoint
        hook.after_val_epoch(runner, {'accuracy/top1': VALUES[epoch - 1]})
        if runner.train_loop.stop_training:
            return epoch
    return None


def test_patience_counts_across_a_resume(tmp_path):
    checkpoints = {}
    runner = fake_runner(tmp_path, resume=True)
    assert run_epochs(EarlyStopOnGoodEnoughHook(patience=2), runner, range(1, 8),
                      checkpoints) == 4

    checkpoints = {}
    hook = EarlyStopOnGoodEnoughHook(patience=2)
    assert run_epochs(hook, fake_runner(tmp_path, resume=True), [1, 2, 3], checkpoints) is None
    assert hook.wait == 1
    resumed = EarlyStopOnGoodEnoughHook(patience=2)  # a new process, from epoch 3's checkpoint
    runner = fake_runner(tmp_path, resume=True)
    resumed.after_load_checkpoint(runner, checkpoints[3])
    assert (resumed.best, resumed.wait) == (60.0, 1)
    assert run_epochs(resumed, runner, range(4, 8), checkpoints) == 4

    # the state file of another run is not used; the checkpoint's own count is
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'early_stop_state.json').write_text(json.dumps(dict(run_id='x', history=[])))
    fresh = EarlyStopOnGoodEnoughHook(patience=2)
    fresh.after_load_checkpoint(fake_runner(other, resume=True), checkpoints[3])
    assert (fresh.best, fresh.wait) == (60.0, 0)  # epoch 3's validation is not counted
    # loading weights for a new run (load_from without resume) starts the count afresh
    fresh = EarlyStopOnGoodEnoughHook(patience=2)
    fresh.after_load_checkpoint(fake_runner(tmp_path, resume=False), checkpoints[3])
    assert (fresh.best, fresh.wait, fresh.history) == (None, 0, [])


def test_a_rung_resumed_in_a_new_process_stops_where_the_whole_run_would(tmp_path,
                                                                         fmnist_root):
    # min_delta=1000: no validation after the first improves, so with patience 2 an
    # uninterrupted run stops after epoch 3. Train 2 epochs, then resume up to 5.
    config = tmp_path / 'patience.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/fashion_mnist/student_fmnist.py']\n"
        "custom_hooks = [dict(type='EarlyStopOnGoodEnoughHook', metric='accuracy/top1',\n"
        "                     patience=2, min_delta=1000.0)]\n")
    work = tmp_path / 'run'
    options = data_options(fmnist_root, indices=32, batch_size=16)
    first = train(config, work, *options, 'train_cfg.max_epochs=2')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert not (work / 'early_stop.json').exists()
    second = train(config, work, *options, 'train_cfg.max_epochs=5', extra=['--resume'])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    status = json.loads((work / 'early_stop.json').read_text())
    assert status['epoch'] == 3 and 'for 2 validations' in status['reason']
    assert (work / 'epoch_3.pth').exists() and not (work / 'epoch_4.pth').exists()
