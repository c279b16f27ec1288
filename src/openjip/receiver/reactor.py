"""Keeping pynetdicom's association reactor off a response that a sender waits for.

An association's reactor thread takes incoming DIMSE messages off the queue and serves the
requests among them. Before a ``send_*`` method sends a request, pynetdicom clears the
reactor's checkpoint and waits for its ``_is_paused`` flag; but the reactor raises that flag
just *before* waiting on a checkpoint that may still be set. When the sender clears it in that
moment, both go on: the reactor reads the response off the queue, drops it as "Received
unexpected C-STORE service message", and the sender waits out the DIMSE timeout (seen with
``openjip send`` and C-MOVE sub-operations under CPU load). :func:`pause_reactor` instead waits
until the reactor thread is really blocked on the cleared checkpoint.
"""

from __future__ import annotations

import threading
import time

from pynetdicom.association import Association


def pause_reactor(assoc: Association, timeout: float = 5.0) -> None:
    """Clear ``assoc``'s reactor checkpoint and return once the reactor waits on it.

    Whoever sends next sets the checkpoint again (pynetdicom's ``send_*`` methods do). Returns
    at once when called from the reactor's own thread (a handler sending C-GET
    sub-operations) and after ``timeout`` seconds when the reactor is busy elsewhere (pynetdicom's
    own behaviour then).
    """
    checkpoint = assoc._reactor_checkpoint
    checkpoint.clear()
    if threading.current_thread() is assoc:
        return
    # The only thread that ever waits on this checkpoint is the reactor.
    waiters = checkpoint._cond._waiters  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while not waiters and assoc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.0001)
