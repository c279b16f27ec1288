"""The parser fuzz batch of ``make test``: a few hundred seeded mutations of pydicom's test
files through ``read_instance``, as bytes and as files, each passing the oracle of
:func:`parser_mutations.check` (a strict-JSON header or ``UnreadableInstance`` with a reason).

On the code before issue 16 these cases let ``RecursionError``, ``NotImplementedError``,
``BytesLengthException`` and ``zlib.error`` escape. Long, coverage-guided runs: ``make fuzz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tests import parser_mutations (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from parser_mutations import check, mutant, seeds

from openjip.dicom import UnreadableInstance, read_instance

CASES = 300
BATCH = 50


def test_the_seeds_are_real_files() -> None:
    assert len(seeds()) >= 50


@pytest.mark.parametrize("first", range(0, CASES, BATCH), ids=lambda n: f"cases{n}-{n + BATCH - 1}")
def test_mutated_files_read_or_are_refused_with_a_reason(first: int) -> None:
    for case in range(first, first + BATCH):
        try:
            check(mutant(case))
        except Exception as error:
            raise AssertionError(f"case {case}: {type(error).__name__}: {error}") from error


def test_mutated_files_on_disk_read_as_their_bytes_do(tmp_path: Path) -> None:
    """The file path reads the first 64 kB and maps the rest only when needed."""
    path = tmp_path / "mutant.dcm"
    for case in range(0, CASES, 10):
        data = mutant(case)
        path.write_bytes(data)
        try:
            expected = read_instance(data)
        except UnreadableInstance:
            with pytest.raises(UnreadableInstance):
                read_instance(path)
            continue
        assert read_instance(path) == expected, f"case {case}"
