"""Warm trial processes: a fork server that has already imported the training stack.

A cold trial (``search.trial_launcher='spawn'``) is ``python -m kdzoo.cli.train CONFIG
--work-dir DIR``: a new interpreter that imports torch, MMEngine and kdzoo and decodes
the data set before the first iteration. With ``trial_launcher='fork'`` (the default on
Linux) a search worker starts one *zygote* once (``python -m kdzoo.search.forkserver``),
which imports the stack, registers kdzoo's modules and decodes the data set files the
trials read (:func:`kdzoo.datasets.fashion_mnist.read_idx` keeps them in a per-process
cache), and then forks one fresh child per trial. Each trial is still its own process,
with the command line, work dir, environment, current directory, log file and exit code
of the cold trial:

* the zygote runs no torch operation (intra-op / OpenMP thread pools do not survive a
  fork): it only imports, and it starts no Python thread (the idle native pools that
  numpy's BLAS and OpenCV start on import are there too when a DataLoader forks its
  workers);
* the child resets what a new interpreter would have fresh: the signal handlers, the
  environment (``os.environ`` is the trial's), the current directory, ``sys.argv`` and the
  random states (``random``, NumPy and torch from the OS's entropy, or torch's fixed
  start-up seed for a torch that has one), then runs ``kdzoo.cli.train`` (or the
  ``train_script``) as ``__main__`` and exits with its exit code as a multiprocessing
  child does (non-daemon threads joined, ``atexit`` handlers run, output flushed, then
  ``os._exit``: the interpreter's teardown of its modules is skipped);
* the zygote dies with its search worker (``PR_SET_PDEATHSIG`` and the end of its control
  socket: it then SIGKILLs its trials), and every trial dies with the zygote
  (``PR_SET_PDEATHSIG`` again): killing the worker, even by SIGKILL, kills the trial;
* a timeout, the pruner or an interrupted worker kill the trial with SIGKILL (sent by the
  zygote, the trial's parent, so a reused process id is never hit); the exit code comes
  back as :attr:`subprocess.Popen.returncode` would (``-9`` for SIGKILL).

The zygote is started with exactly the environment of the trials (import-time settings
such as ``OMP_NUM_THREADS`` or ``CUDA_VISIBLE_DEVICES`` then match); a runner whose
trial environment changes starts a new one. Multi-process trials (``trial_gpus > 1``,
torchrun) keep the cold launch.
"""
import json
import os
import os.path as osp
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional

#: Values of ``search.trial_launcher``.
LAUNCHERS = ('fork', 'spawn')
#: torch's CPU generator seed in a new interpreter (``c10::default_rng_seed_val``) for
#: versions that do not seed it from the OS's entropy on import.
TORCH_START_SEED = 67280421310721
#: Message size limit of the control socket (a trial's environment must fit).
MAX_MESSAGE = 1 << 20

PR_SET_PDEATHSIG = 1
#: Modules a training run imports late (through MMCV and MMEngine's visualizer), imported
#: by the zygote when installed; none of them runs a torch operation on import.
WARM_IMPORTS = ('torchvision', 'matplotlib', 'mmcv.cnn', 'mmcv.transforms')
#: The zygote's command (``python -c``; ``-m kdzoo.search.forkserver`` would import this
#: module twice, as ``__main__`` and through ``kdzoo.search``).
ZYGOTE_MAIN = 'import sys; from kdzoo.search.forkserver import main; sys.exit(main())'


def fork_available() -> Optional[str]:
    """``None`` when warm (forked) trials work on this system, else why not."""
    if not hasattr(os, 'fork') or not sys.platform.startswith('linux'):
        return f'fork server needs Linux (this is {sys.platform})'
    if not hasattr(socket, 'send_fds'):
        return 'fork server needs Python >= 3.9 (socket.send_fds)'
    return None


def check_launcher(value) -> str:
    """``value`` when it is a valid ``search.trial_launcher``; else a ValueError naming it
    and the valid choices."""
    if value not in LAUNCHERS:
        raise ValueError(f'search.trial_launcher={value!r}; valid: {", ".join(LAUNCHERS)} '
                         f'(fork: trials are forked from a warm process that has imported '
                         f'the stack; spawn: each trial starts a new interpreter)')
    return value


def _set_pdeathsig() -> None:
    """Linux: SIGKILL this process when its parent (thread) dies."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def _send(sock: socket.socket, message: dict, fds: Iterable[int] = ()) -> None:
    data = json.dumps(message).encode()
    fds = list(fds)
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def _recv(sock: socket.socket):
    """``(message, fds)``; ``(None, [])`` at the end of the connection."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 4)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data.decode()), list(fds)


def preload_modules(text: str) -> List[str]:
    """Modules the zygote imports for a config whose text is ``text``: always torch,
    MMEngine's runner, kdzoo's training command and :data:`WARM_IMPORTS`; MMDetection /
    MMSegmentation (and MMPretrain) only when the config names them."""
    modules = ['torch', 'mmengine.runner', 'kdzoo.cli.train'] + list(WARM_IMPORTS)
    for name in ('mmdet', 'mmseg', 'mmpretrain'):
        if f'{name}.' in text or f"'{name}'" in text or f'"{name}"' in text:
            modules.append(name)
    return modules


def dataset_dicts(cfg: dict) -> List[dict]:
    """The dataset dicts of a config's train and val loaders (wrapped ones too, e.g.
    the ``dataset`` of a ``HeldOutSplit``): what a trial reads."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if 'type' in node:
                found.append(node)
            for key in ('dataset', 'datasets'):
                if key in node:
                    walk(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    for loader in ('train_dataloader', 'val_dataloader'):
        if isinstance(cfg.get(loader), dict):
            walk(cfg[loader].get('dataset'))
    return found


# --------------------------------------------------------------------------------------
# The search worker's side


class WarmTrial:
    """A trial forked by the zygote; the part of :class:`subprocess.Popen` the runner uses
    (``pid``, ``returncode``, ``wait(timeout)``, ``kill()``)."""

    def __init__(self, server: 'ForkServer', pid: int):
        self.server = server
        self.pid = pid
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            try:
                self.wait(0)
            except subprocess.TimeoutExpired:
                pass
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.wait_exit(self.pid, timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.server.kill(self.pid)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self.server.kill(self.pid, signum)


class ForkServer:
    """The search worker's handle on its zygote.

    Args:
        python: the interpreter of the zygote (the trials' interpreter).
        env: the trials' environment; the zygote runs with it.
        modules: what the zygote imports (:func:`preload_modules`).
        datasets: dataset dicts whose files the zygote decodes (:func:`dataset_dicts`).
        log_path: where the zygote's own output goes.
        module_path: a directory put first on the zygote's ``PYTHONPATH`` (this kdzoo).
        start_timeout: seconds the zygote may take to import and decode.

    ``start(wait=False)`` lets a search worker run its first trials cold while the zygote
    warms up (:meth:`ready`).
    """

    def __init__(self, python: str, env: Dict[str, str], modules: Iterable[str] = (),
                 datasets: Iterable[dict] = (), log_path: Optional[str] = None,
                 module_path: Optional[str] = None,
                 start_timeout: float = 300.0):
        self.python = python
        self.env = dict(env)
        self.modules = list(modules)
        self.datasets = json.loads(json.dumps(list(datasets), default=str))
        self.log_path = log_path
        self.module_path = module_path
        self.start_timeout = start_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.sock: Optional[socket.socket] = None
        self.info: dict = {}
        self.started: Optional[float] = None
        self._exits: Dict[int, int] = {}

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self, wait: bool = True) -> Optional[dict]:
        """Start the zygote; with ``wait``, wait until it is warm (:meth:`ready`)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(self.env)
        if self.module_path:
            env['PYTHONPATH'] = os.pathsep.join(filter(None, [self.module_path,
                                                              env.get('PYTHONPATH')]))
        log = open(self.log_path, 'a') if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [self.python, '-c', ZYGOTE_MAIN, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_set_pdeathsig)
        finally:
            theirs.close()
            if log is not subprocess.DEVNULL:
                log.close()
        self.sock = ours
        self.started = time.time()
        _send(ours, dict(op='setup', modules=self.modules, datasets=self.datasets))
        return self.ready(self.start_timeout) if wait else None

    def ready(self, timeout: Optional[float] = 0.0) -> Optional[dict]:
        """What the zygote did to warm up (``modules``, ``warmed`` data files,
        ``seconds``) once it is warm; ``None`` while it is still warming up (after
        ``timeout`` seconds). RuntimeError when it failed to start."""
        if self.info:
            return self.info
        if timeout is not None and self.started is not None:
            timeout = min(timeout, max(0.0, self.started + self.start_timeout - time.time()))
        try:
            reply = self._next(timeout)
        except subprocess.TimeoutExpired:
            if time.time() - (self.started or 0) < self.start_timeout:
                return None
            reply = dict(error=f'not warm after {self.start_timeout:g}s')
        if reply is None or not reply.get('ready'):
            error = (reply or {}).get('error') or 'the fork server exited while starting'
            self.close()
            raise RuntimeError(f'{error} (log: {self.log_path})')
        self.info = reply
        return reply

    def _next(self, timeout: Optional[float]) -> Optional[dict]:
        """The next message of the zygote (``None``: it is gone); TimeoutExpired when none
        came within ``timeout``."""
        if self.sock is None:
            return None
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired('fork server', timeout)
        try:
            message, fds = _recv(self.sock)
        except OSError:
            message, fds = None, []
        for fd in fds:
            os.close(fd)
        return message

    def launch(self, argv: List[str], log_fd: int, env: Dict[str, str],
               cwd: Optional[str] = None, script: Optional[str] = None) -> WarmTrial:
        """Fork a trial: ``kdzoo.cli.train`` (or ``script``) with arguments ``argv``, its
        stdout and stderr on ``log_fd``, environment ``env`` and current directory
        ``cwd``."""
        _send(self.sock, dict(op='run', argv=list(argv), env=dict(env),
                              cwd=cwd or os.getcwd(), script=script), [log_fd])
        reply = self._next(60.0)
        if reply is None or 'started' not in reply:
            error = (reply or {}).get('error') or 'the fork server died'
            self.close()
            raise RuntimeError(f'could not start a warm trial: {error} (log: {self.log_path})')
        return WarmTrial(self, int(reply['started']))

    def wait_exit(self, pid: int, timeout: Optional[float]) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while pid not in self._exits:
            left = None if deadline is None else max(0.0, deadline - time.time())
            try:
                message = self._next(left)
            except subprocess.TimeoutExpired:
                raise subprocess.TimeoutExpired(f'trial {pid}', timeout) from None
            if message is None:  # the zygote died; its trials die with it
                self.close()
                return self._exits.pop(pid, -signal.SIGKILL)
            if 'exited' in message:
                self._exits[int(message['exited'])] = int(message['returncode'])
        return self._exits.pop(pid)

    def kill(self, pid: int, signum: int = signal.SIGKILL) -> None:
        """Signal the trial ``pid`` (through the zygote: its parent, which has not reaped
        it yet, so the id cannot be another process's)."""
        if self.sock is None:
            return
        try:
            _send(self.sock, dict(op='kill', pid=pid, signal=int(signum)))
        except OSError:
            self.close()

    def close(self) -> None:
        """Stop the zygote (its running trials are killed)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------------------
# The zygote's side


def _threads() -> int:
    """OS threads of this process (the main one; idle pools that numpy's BLAS and OpenCV
    start on import, as in any process that forks DataLoader workers)."""
    try:
        return len(os.listdir('/proc/self/task'))
    except OSError:
        return -1


def _warm(setup: dict) -> dict:
    """Import ``setup['modules']`` and decode the files of ``setup['datasets']`` (of the
    classes with a ``warm_decode_cache``); no torch op."""
    import importlib
    start = time.time()
    modules = []
    for name in setup.get('modules', []):
        try:
            importlib.import_module(name)
            modules.append(name)
        except Exception as err:  # the trial itself reports it
            print(f'[forkserver] could not import {name}: {err!r}', flush=True)
    # the child runs kdzoo.cli.train as __main__: a fresh copy of that module
    sys.modules.pop('kdzoo.cli.train', None)
    from kdzoo.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # the trial makes its own scope
    try:  # the Runner logs it at start: its first call imports and probes for seconds
        from mmengine.utils.dl_utils import collect_env
        collect_env()
    except Exception as err:  # the trial itself reports it
        print(f'[forkserver] could not collect the environment: {err!r}', flush=True)
    warmed = []
    from kdzoo.registry import DATASETS
    for data in setup.get('datasets') or []:
        kind = data.get('type')
        try:
            cls = DATASETS.get(kind) if isinstance(kind, str) else None
            warm = getattr(cls, 'warm_decode_cache', None)
            if warm is not None:
                warmed += warm(**{k: v for k, v in data.items() if k != 'type'})
        except Exception as err:  # the trial itself reports it
            print(f'[forkserver] could not decode the data of {kind}: {err!r}', flush=True)
    return dict(ready=True, pid=os.getpid(), modules=modules, warmed=sorted(set(warmed)),
                seconds=round(time.time() - start, 3), threads=_threads())


def _child_setup(request: dict, log_fd: int, zygote: int, sock: socket.socket,
                 close: List[int]) -> dict:
    """In the forked child: become a fresh trial process."""
    _set_pdeathsig()
    if os.getppid() != zygote:  # the zygote died between fork and prctl
        os._exit(128 + signal.SIGKILL)
    sock.close()
    for fd in close:
        try:
            os.close(fd)
        except OSError:
            pass
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
    return request


class _Zygote:
    """The zygote's loop: fork a child per ``run`` request, signal on ``kill``, tell each
    child's exit code; at the end of the socket, SIGKILL the children."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pid = os.getpid()
        self.children: Dict[int, int] = {}  # pid -> pidfd (-1: none)
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)

    def tell(self, message: dict) -> bool:
        try:
            _send(self.sock, message)
            return True
        except OSError:  # the worker is gone
            return False

    def reap(self) -> bool:
        """Tell the exits of finished children; False when the worker is gone."""
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status) if done else None
            except ChildProcessError:
                done, code = pid, 255
            if not done:
                continue
            pidfd = self.children.pop(pid)
            if pidfd >= 0:
                self.poller.unregister(pidfd)
                os.close(pidfd)
            if not self.tell(dict(exited=pid, returncode=code)):
                return False
        return True

    def stop_children(self) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children.clear()

    def serve(self) -> Optional[dict]:
        """Returns ``None`` when the zygote is done, or (in a forked child) the request
        the child runs."""
        sock = self.sock
        while True:
            polled = all(fd >= 0 for fd in self.children.values())
            events = self.poller.poll(None if polled else 200)
            if not self.reap():
                self.stop_children()
                return None
            if not any(fd == sock.fileno() for fd, _ in events):
                continue
            try:
                request, fds = _recv(sock)
            except OSError:
                request, fds = None, []
            if request is None:  # the worker is gone (or closed us): so are its trials
                self.stop_children()
                return None
            op = request.get('op')
            if op == 'kill':
                pid = int(request['pid'])
                if pid in self.children:  # not reaped yet: the id is still this child's
                    try:
                        os.kill(pid, int(request.get('signal', signal.SIGKILL)))
                    except ProcessLookupError:
                        pass
                continue
            if op != 'run' or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                self.tell(dict(error=f'bad request {op!r}'))
                continue
            import threading
            if threading.active_count() != 1:  # nothing here starts one
                print(f'[forkserver] {threading.active_count()} Python threads before '
                      f'fork (expected 1)', flush=True)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                siblings = [fd for fd in self.children.values() if fd >= 0]
                return _child_setup(request, fds[0], self.pid, sock, siblings)
            os.close(fds[0])
            try:
                pidfd = os.pidfd_open(pid)
                self.poller.register(pidfd, select.POLLIN)
            except (AttributeError, OSError):
                pidfd = -1
            self.children[pid] = pidfd
            if not self.tell(dict(started=pid)):
                self.stop_children()
                return None


def _serve(sock: socket.socket) -> Optional[dict]:
    """Warm up on the ``setup`` request, then serve (see :class:`_Zygote`)."""
    message, _ = _recv(sock)
    if message is None or message.get('op') != 'setup':
        return None
    try:
        reply = _warm(message)
    except BaseException as err:  # noqa: B902 - tell the worker, then stop
        _send(sock, dict(ready=False, error=f'{type(err).__name__}: {err}'))
        return None
    _send(sock, reply)
    return _Zygote(sock).serve()


def _reseed() -> None:
    """The random states of a new interpreter."""
    import random
    random.seed()
    if 'numpy' in sys.modules:
        import numpy as np
        np.random.seed()
    if 'torch' in sys.modules:
        import torch
        if torch.initial_seed() == TORCH_START_SEED:  # this torch starts from a fixed seed
            torch.random.default_generator.manual_seed(TORCH_START_SEED)
        else:  # it seeds itself from the OS's entropy on import (torch >= 2.x)
            torch.seed()


def _run_trial(request: dict) -> None:
    """Run ``kdzoo.cli.train`` (or the script) as ``__main__``, as ``python -m
    kdzoo.cli.train ARGV`` would, and exit with its exit code (:func:`_exit`)."""
    import runpy
    _reseed()
    script = request.get('script')
    code = 0
    try:
        if script:
            sys.argv = [script] + list(request['argv'])
            sys.path[0] = osp.dirname(osp.abspath(script))
            runpy.run_path(script, run_name='__main__')
        else:
            sys.argv = ['-m'] + list(request['argv'])  # runpy sets argv[0] to the file
            sys.path[0] = os.getcwd()
            sys.modules.pop('kdzoo.cli.train', None)
            runpy.run_module('kdzoo.cli.train', run_name='__main__', alter_sys=True)
    except SystemExit as exit_:  # as the interpreter reads it
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        _exit(0, signal.SIGINT)  # Python ends an uncaught Ctrl-C by SIGINT
    except BaseException:  # noqa: B902 - the interpreter's traceback and exit code 1
        sys.excepthook(*sys.exc_info())
        code = 1
    _exit(code)


def _exit(code: int, signum: Optional[int] = None) -> None:
    """End the trial as a multiprocessing child ends: join the non-daemon threads, run
    the ``atexit`` handlers (logging's flush, multiprocessing's stop of daemon children
    such as DataLoader workers), flush stdout and stderr, then ``os._exit``, skipping
    the interpreter's teardown of its modules (about 2 s after a training run here)."""
    import atexit
    import threading
    try:
        threading._shutdown()
    except Exception:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: B902 - as the interpreter: report and go on
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if signum is not None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(code)


def main(argv=None) -> int:
    """The zygote on the socket ``FD`` (``python -c ZYGOTE_MAIN FD``)."""
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    # Ctrl-C in a terminal reaches the whole process group: the worker handles it (and
    # kills its trial); the zygote carries on until the worker closes it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    request = _serve(sock)
    if request is None:
        return 0
    _run_trial(request)  # in a forked child: never returns
    return 0


if __name__ == '__main__':
    sys.exit(main())
