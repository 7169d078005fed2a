"""The live progress line of ``tools/search.py`` (rich), under the search's log lines:
the running trial, its epoch and iteration, the training's ETA and the best so far."""
from typing import Optional

from rich.console import Console
from rich.live import Live
from rich.text import Text


def progress_text(info: dict) -> str:
    """One line from a loop progress dict (see ``SearchLoop(on_progress=...)``)."""
    parts = [info.get('label') or f'trial {info.get("trial")}']
    if info.get('epoch') is not None:
        parts.append(f'epoch {info["epoch"]}')
        if info.get('iters'):
            parts.append(f'iter {info["iter"]}/{info["iters"]}')
        if info.get('eta'):
            parts.append(f'ETA {info["eta"]}')
    else:
        parts.append('starting')
    if info.get('best'):
        parts.append(str(info['best']))
    return ' | '.join(parts)


class ProgressDisplay:
    """``with ProgressDisplay() as show: run_search(..., log=show.log,
    on_progress=show.update)``; on a terminal the last line is a live progress line, else
    only the log lines are printed."""

    def __init__(self, console: Optional[Console] = None):
        self.console = console or Console()
        self.live: Optional[Live] = None

    def __enter__(self) -> 'ProgressDisplay':
        if self.console.is_terminal:
            self.live = Live(Text(''), console=self.console, transient=True,
                             refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def log(self, message: str) -> None:
        if self.live is not None:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(message, flush=True)

    def update(self, info: dict) -> None:
        if self.live is not None:
            self.live.update(Text(progress_text(info), style='bold'))
