"""A storage SCP for the send tests, run as its own process: ``python pynetdicom_scp.py OUT``.

Accepts every storage SOP class in every transfer syntax on a free loopback port (printed on
the first line of standard output), writes each received dataset to ``OUT/<SOPInstanceUID>``
as it arrived, appends a line per association to ``OUT/associations`` (the number of
presentation contexts the requestor proposed), and answers the
statuses given as JSON in ``SCP_FAIL`` (``{"<SOPInstanceUID>": status}``) instead of success.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

out = Path(sys.argv[1])
fail = {uid: int(status) for uid, status in json.loads(os.environ.get("SCP_FAIL", "{}")).items()}


def handle_store(event: evt.Event) -> int:
    uid = str(event.request.AffectedSOPInstanceUID)
    if uid in fail:
        return fail[uid]
    (out / uid).write_bytes(event.request.DataSet.getvalue())
    return 0x0000


def handle_established(event: evt.Event) -> None:
    with (out / "associations").open("a") as log:
        log.write(f"{len(event.assoc.requestor.requested_contexts)}\n")


ae = AE(ae_title="PEER")
for context in AllStoragePresentationContexts:
    ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
server = ae.start_server(
    ("127.0.0.1", 0),
    block=False,
    evt_handlers=[(evt.EVT_C_STORE, handle_store), (evt.EVT_ESTABLISHED, handle_established)],
)
print(server.server_address[1], flush=True)
sys.stdin.read()  # serve until the test closes our standard input
server.shutdown()
