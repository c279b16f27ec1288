"""Running site components in the foreground until the user or the system says stop."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Protocol, runtime_checkable

from rich.console import Console
from rich.markup import escape


@runtime_checkable
class SiteComponent(Protocol):
    """One service of a site (receiver, web, Airflow, ...) that can run in this process."""

    name: str

    def start(self) -> None:
        """Start serving; return once the component listens, raise with a reason if it cannot."""

    def stop(self) -> None:
        """Stop serving and release ports and files; safe to call after a failed start."""

    def endpoints(self) -> list[str]:
        """Lines saying where the component listens, for people (after :meth:`start`)."""


def _stop_all(components: Sequence[SiteComponent], console: Console) -> bool:
    """Stop ``components`` in reverse order; ``False`` if any of them failed to stop."""
    clean = True
    for component in reversed(components):
        try:
            component.stop()
        # Stopping must go on to the next component whatever this one raised; the failure
        # is reported and turns the exit code non-zero.
        except Exception as error:  # noqa: BLE001
            console.print(f"[red]error stopping {component.name}:[/] {escape(str(error))}")
            clean = False
    return clean


def run_site(
    components: Sequence[SiteComponent],
    *,
    console: Console | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Start every component, print its endpoints, wait for Ctrl-C/SIGTERM (or ``stop``),
    stop all; return the process exit code (0 when everything started and stopped cleanly).

    When a component fails to start, those already started are stopped and 1 is returned.
    """
    console = console or Console(soft_wrap=True)
    stop = stop or threading.Event()
    started: list[SiteComponent] = []
    for component in components:
        try:
            component.start()
        # Whatever a component raises while starting, the ones already running must be stopped
        # and the user told why; the exception text is the reason.
        except Exception as error:  # noqa: BLE001
            console.print(f"[red]cannot start {component.name}:[/] {escape(str(error))}")
            component.stop()
            _stop_all(started, console)
            return 1
        started.append(component)

    console.print("[bold green]openjip site is running[/] (Ctrl-C stops it)")
    for component in started:
        for line in component.endpoints():
            console.print(f"  {escape(line)}")
    sys.stdout.flush()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        console.print(f"\n{signal.Signals(signum).name} received, stopping ...")
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        # A bounded wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    clean = _stop_all(started, console)
    console.print("stopped" if clean else "[red]stopped with errors[/]")
    sys.stdout.flush()
    return 0 if clean else 1
