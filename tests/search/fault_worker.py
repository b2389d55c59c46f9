"""Worker functions for the Ray fault tests (imported by the Ray worker processes)."""

import os
import signal
import time


def run(task):
    mode = task['arch'].get('mode')
    if mode == 'raise':
        raise RuntimeError('worker raised on purpose')
    if mode == 'nan':
        raise FloatingPointError('loss is nan at iteration 7: training diverged')
    if mode == 'nodata':  # the data is not where this worker looks
        from gpunet_mm.apis.runner import check_dataset_files

        missing = dict(data_root='/nonexistent/demo_det/', ann_file='annotations/a.json')
        check_dataset_files(dict(train_dataloader=dict(dataset=missing)))
    if mode in ('diskfull', 'diskfull_wrapped'):  # a checkpoint's bytes on a full disk
        try:
            with open('/dev/full', 'wb') as f:
                f.write(b'\0' * 65536)
                f.flush()
        except OSError as e:
            if mode == 'diskfull':
                raise
            raise RuntimeError('mmengine: saving the checkpoint failed') from e
    if mode == 'sleep':
        time.sleep(60)
    if mode == 'sigkill':
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == 'threads':
        return dict(metric=1.0, omp=os.environ.get('OMP_NUM_THREADS'))
    return dict(metric=float(task['arch'].get('value', 1.0)))
