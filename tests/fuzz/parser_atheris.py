"""Coverage-guided fuzzing of the DICOM header readers with atheris (libFuzzer), for long runs:
``make fuzz`` (``FUZZ_SECONDS``, default 300). Starts from pydicom's test files and checks every
input with the oracle of ``parser_mutations.check``; an escaping exception or an input slower
than ``-timeout`` seconds stops the run and leaves the input as ``crash-*``/``timeout-*``.

    .venv/bin/python tests/fuzz/parser_atheris.py -max_total_time=300 -timeout=10
"""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))

with atheris.instrument_imports(include=["openjip.dicom", "pydicom"]):
    from parser_mutations import check, seeds


def main() -> None:
    logging.disable(logging.WARNING)  # bad values are logged as warnings by design
    warnings.simplefilter("ignore")  # and pydicom warns about them too
    corpus = Path(tempfile.mkdtemp(prefix="openjip-parser-corpus-"))
    for number, seed in enumerate(seeds()):
        (corpus / f"seed-{number:03d}.dcm").write_bytes(seed)
    atheris.Setup([*sys.argv, str(corpus)], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
