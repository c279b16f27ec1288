"""A process that works on the index the environment's settings name, for the multi-process
tests: ``index_worker.py GO_FILE upsert PREFIX COUNT SERIES`` or
``index_worker.py GO_FILE complete SERIES_UID LAST_RECEIVED_AT`` or
``index_worker.py GO_FILE acknowledge PREFIX`` (upserts until killed, printing each UID once its
upsert returned, as a receiver acknowledges).

It waits for GO_FILE to exist (so that several workers start together) and prints its result.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from openjip.config import Settings
from openjip.index import InstanceRecord, open_index


def wait_for(go: Path) -> None:
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{go} never appeared")
        time.sleep(0.005)


def main(go: Path, command: str, *args: str) -> None:
    index = open_index(Settings())
    wait_for(go)  # the first call below may be the one that creates the index file
    if command == "upsert":
        prefix, count, series = args[0], int(args[1]), int(args[2])
        new = 0
        for i in range(count):
            new += index.upsert_instance(
                InstanceRecord(
                    SOPInstanceUID=f"{prefix}.{i}",
                    SeriesInstanceUID=f"2.{i % series}",
                    StudyInstanceUID=f"3.{i % series % 2}",
                    Modality="CT",
                    InstanceNumber=i,
                    size=10,
                    received_at=time.time(),
                )
            )
        print(new)
    elif command == "acknowledge":
        for i in range(1_000_000):
            uid = f"{args[0]}.{i}"
            index.upsert_instance(
                InstanceRecord(uid, f"2.{i // 50}", "3", size=10, received_at=time.time())
            )
            print(uid, flush=True)
    elif command == "complete":
        print(index.mark_series_complete(args[0], float(args[1])) is not None)
    index.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
