"""An event-driven receive path inside pynetdicom (3.0.x).

pynetdicom runs two polling loops per association: the DUL thread sleeps 1 ms whenever it
finds nothing to do, and the association thread sleeps 1 ms every turn before looking for a
decoded message. With one sender every instance waits on both, ~1.5 ms of a ~4 ms budget.
Here the DUL thread blocks in ``select`` on its socket and a wake-up pipe (written when a
response is queued) and the association thread blocks on the DIMSE message queue, so each
side wakes the moment there is work. Once the association is established the DUL thread
reads P-DATA itself (:mod:`openjip.receiver.pdata`, unless ``receiver.pdata_reader`` is
``pynetdicom``): C-STORE requests are received and answered there, without pynetdicom's
state machine, DIMSE decoding or association thread. Sockets read whole PDUs in large pieces
instead of 4 KiB ones, within the association's time limits
(:class:`openjip.receiver.transport.TimedSocket`), starting with the A-ASSOCIATE-RQ the gate
already read.

These are subclasses of pynetdicom internals; ``pynetdicom`` is pinned to 3.0.x for them and
the receiver tests exercise every path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket, RequestHandler

from openjip.receiver.admission import Admission
from openjip.receiver.pdata import PDataReader
from openjip.receiver.status import Store, error_comment
from openjip.receiver.transport import ReceiverServer, Stalled, TimedSocket

LOGGER = logging.getLogger(__name__)

_IDLE_WAIT = 0.05
"""Longest a reactor blocks without news, so timers and kill flags are still seen."""


class WakingDUL(DULServiceProvider):
    """The DUL reactor, blocking in ``select`` instead of sleeping between polls."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self.daemon = True
        self.pdata: PDataReader | None = None
        """Reads the PDUs of the established association; set by the request handler."""
        self.timed: TimedSocket | None = None
        """The association's socket with its time limits; set by the request handler."""

    def wake(self) -> None:
        """Make the reactor look at its queues now."""
        # A full pipe means a wake-up is pending anyway; a closed one, that the reactor ended.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        if threading.current_thread() is not self:  # the reactor itself needs no wake-up
            self.wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self.wake()

    def _wait(self) -> None:
        sock = self.socket.socket if self.socket is not None else None
        if sock is None or sock.fileno() < 0:
            time.sleep(self._run_loop_delay)
            return
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted bytes wait in the TLS layer, where select cannot see them
        try:
            ready, _, _ = select.select([sock.fileno(), self._wake_read], [], [], _IDLE_WAIT)
        except (OSError, ValueError):
            time.sleep(self._run_loop_delay)
            return
        if self._wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)

    def run_reactor(self) -> None:
        """pynetdicom's ``run_reactor`` with the idle sleep replaced by :meth:`_wait`."""
        self._idle_timer.start()
        idle = False
        try:
            while True:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()
                    idle = True
                if idle:
                    self._wait()
                if self._kill_thread:
                    break
                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")
                try:
                    if self._process_recv_primitive():
                        pass
                    elif self._read_transport():
                        self._idle_timer.restart()
                    try:
                        event = self.event_queue.get(block=False)
                    except queue.Empty:
                        idle = True
                        continue
                    # Actions decode what the peer sent (DT-2: its DIMSE messages).
                    self.state_machine.do_action(event)
                except Exception as exc:  # noqa: BLE001 - as pynetdicom: abort, never hang
                    LOGGER.error("Exception in DUL reactor, aborting association: %s", exc)
                    self._abort_on_error()
                    return
                idle = False
        finally:
            if self.pdata is not None:
                self.pdata.discard()
            for fd in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _read_transport(self) -> bool:
        """pynetdicom's ``_is_transport_event``, except that an established association's
        PDUs are read by :attr:`pdata`; each PDU and message starts its time limit."""
        if self.timed is not None:
            pdata = self.pdata
            if self.assoc.dimse.message is not None or (pdata is not None and pdata.in_message):
                self.timed.message_started()
            else:
                self.timed.message_ended()
            self.timed.pdu_started()
        state = self.state_machine.current_state
        if state == "Sta13" and self.socket is not None:
            # Released or aborted: whatever the peer still sends is not read (pynetdicom
            # would parse it as PDUs, waiting on garbage); the connection ends now.
            self.socket.close()
            return True
        if self.pdata is None or state != "Sta6":
            return self._is_transport_event()
        if self.socket is None or not self.socket.ready:
            return False
        self.pdata.read_pdu()
        return True

    def _abort_on_error(self) -> None:
        abort_pdu = A_ABORT_RQ()
        abort_pdu.source = 0x02
        abort_pdu.reason_diagnostic = 0x00
        if self.socket is not None:
            self.socket.send(abort_pdu.encode())
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        self._kill_thread = True


class WakingUserQueue(queue.Queue[Any]):
    """The DUL's primitives for the association (A-RELEASE, A-ABORT, ...): each also wakes the
    association thread, which otherwise notices a release request only after its idle wait
    (up to 50 ms added to every association's release)."""

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self._assoc = assoc

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._assoc.dimse.msg_queue.put((None, None))  # no message: just look again


class OneContextDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE layer, except that a message whose fragments change presentation
    context aborts the association (pynetdicom would take each fragment as it comes)."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._context_id: int | None = None

    def receive_primitive(self, primitive: Any) -> None:
        for context_id, _ in primitive.presentation_data_value_list:
            if self._context_id is None:
                self._context_id = context_id
            elif context_id != self._context_id:
                LOGGER.error(
                    "Fragment on presentation context %d inside a message on context %d",
                    context_id,
                    self._context_id,
                )
                self.message = None
                self.dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT
                return
        super().receive_primitive(primitive)
        if self.message is None:
            self._context_id = None


class ReactiveAssociation(Association):
    """An acceptor association whose reactor waits on the DIMSE queue instead of polling."""

    def __init__(self, ae: Any, mode: str, on_finished: Callable[[], None]) -> None:
        super().__init__(ae, mode)
        self.dul = WakingDUL(self)
        self.dul.to_user_queue = WakingUserQueue(self)
        self.dimse = OneContextDIMSE(self)
        # The timers live in the DUL: give the new one the AE's timeouts (pynetdicom set
        # them on the DUL it made, so the idle limit and ARTIM would stay at 60 s and 30 s).
        self.acse_timeout = ae.acse_timeout
        self.network_timeout = ae.network_timeout
        self.daemon = True
        self._on_finished = on_finished

    def run(self) -> None:
        """The association, then the report that it ended (its admission is freed)."""
        try:
            super().run()
        finally:
            self._on_finished()

    def _serve_request(self, msg: Any, context_id: int) -> None:
        """pynetdicom's, except that a C-STORE request missing a field is answered with
        0xC000 (pynetdicom logs and drops it, and the sender waits for ever)."""
        if isinstance(msg, C_STORE) and not msg.is_valid_request and not self._sent_release:
            missing = [k for k in msg.REQUEST_KEYWORDS if getattr(msg, k, None) is None]
            response: Any = C_STORE()
            response.MessageIDBeingRespondedTo = msg.MessageID or 0
            response.AffectedSOPClassUID = msg.AffectedSOPClassUID
            response.AffectedSOPInstanceUID = msg.AffectedSOPInstanceUID
            response.Status = Store.CANNOT_UNDERSTAND.code
            response.ErrorComment = error_comment(f"{', '.join(missing)} missing in the request")
            LOGGER.warning("C-STORE request without %s refused", ", ".join(missing))
            self.dimse.send_msg(response, context_id)
            return
        super()._serve_request(msg, context_id)

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor loop, blocking on the message queue between checks."""
        self._is_paused = False
        messages = self.dimse.msg_queue
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            try:
                context_id, msg = messages.get(timeout=_IDLE_WAIT)
            except queue.Empty:
                msg = None
            if msg and context_id is not None:
                self._serve_request(msg, context_id)
                continue  # more messages may be queued; check the rest once idle
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                LOGGER.error("Network timeout reached")
                self.abort()
                self.kill()
                return


class WholePDUSocket(AssociationSocket):
    """Reads the requested bytes through the association's :class:`TimedSocket`, in large
    pieces (not 4 KiB), starting with the A-ASSOCIATE-RQ the gate read already."""

    def __init__(self, assoc: Association, timed: TimedSocket, already_read: bytes) -> None:
        super().__init__(assoc, client_socket=timed.socket)
        self.timed = timed
        self._already_read = already_read

    @property
    def ready(self) -> bool:
        return bool(self._already_read) or bool(super().ready)

    def recv(self, nr_bytes: int) -> bytearray:
        data = b""
        if self._already_read:
            data, self._already_read = (
                self._already_read[:nr_bytes],
                self._already_read[nr_bytes:],
            )
        try:
            if len(data) < nr_bytes:
                data += self.timed.recv(nr_bytes - len(data))
        except Stalled as exc:  # pynetdicom ends the association on the short read
            LOGGER.warning("Association aborted: %s", exc)
        return bytearray(data)


class ReactiveRequestHandler(RequestHandler):
    """Creates :class:`ReactiveAssociation` objects on :class:`WholePDUSocket` sockets for
    the connections the gate admitted."""

    server: ReceiverServer

    def __init__(
        self, request: Any, client_address: Any, server: ReceiverServer, admission: Admission
    ) -> None:
        self.admission = admission
        super().__init__(request, client_address, server)

    def _create_association(self) -> Association:
        server, admission = self.server, self.admission
        assoc = ReactiveAssociation(
            self.ae, MODE_ACCEPTOR, on_finished=lambda: server.on_finished(admission)
        )
        assoc._server = server
        timestamp = datetime.strftime(datetime.now(), "%Y%m%d%H%M%S")
        assoc.name = f"AcceptorThread@{timestamp}"
        timed = TimedSocket(self.request, server.timeouts)
        assoc.set_socket(WholePDUSocket(assoc, timed, admission.request))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = list(server.contexts)
        assoc.requestor.address_info = self.remote
        assert isinstance(assoc.dul, WakingDUL)
        assoc.dul.timed = timed
        if server.own_pdata_reader:
            assoc.dul.pdata = PDataReader(
                assoc.dul,
                server.store_service,
                server.incoming_dir,
                timed,
                calling_ae=lambda: str(assoc.requestor.ae_title),
            )
        handlers: dict[Any, Any] = server._handlers
        for event, bound in handlers.items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler, args in bound:
                    assoc.bind(event, handler, args)
        return assoc
