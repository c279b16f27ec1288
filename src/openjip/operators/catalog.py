"""Finding operators on disk: load one folder, or look one up by ``name@version``.

Operators live one per folder (``operator.yaml`` + Dockerfile + code). The search path is the
repository's ``operators/`` folder (when openjip runs from a checkout) followed by
``$OPENJIP_HOME/operators`` (a site's own operators). The first folder holding a given
``name@version`` wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from openjip.config import Settings
from openjip.operators.manifest import (
    MANIFEST_FILE,
    ManifestError,
    ManifestIssue,
    OperatorManifest,
    read_manifest,
)

REPO_OPERATORS_DIR = Path(__file__).resolve().parents[3] / "operators"
"""``operators/`` of the source checkout openjip runs from (absent in an installed wheel)."""


class OperatorNotFound(LookupError):
    """No operator with the requested name (and version) on the search path."""


@dataclass(frozen=True)
class LoadedOperator:
    """A valid manifest and the folder it came from (the working directory of local runs)."""

    manifest: OperatorManifest
    directory: Path

    @property
    def ref(self) -> str:
        """``name@version``."""
        return self.manifest.ref


@dataclass
class Catalog:
    """What a scan of the search path found: valid operators and folders that failed to load."""

    operators: list[LoadedOperator] = field(default_factory=list)
    problems: list[ManifestError] = field(default_factory=list)


def load_operator(directory: Path) -> LoadedOperator:
    """The operator in ``directory``; raises :class:`ManifestError` when it is not a valid one."""
    directory = directory.expanduser().resolve()
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        issue = ManifestIssue("", f"no {MANIFEST_FILE} in this folder")
        raise ManifestError(str(directory), [issue])
    return LoadedOperator(read_manifest(manifest_path), directory)


_SCRIPT_SUFFIXES = (".py", ".sh", ".R", ".jl")


def check_folder(operator: LoadedOperator, *, require_digest: bool = False) -> list[ManifestIssue]:
    """What is missing from a valid manifest's folder: Dockerfile, scripts named in ``command``.

    With ``require_digest`` (publishing to other sites) an image without digest is a problem too.
    """
    issues = []
    if require_digest and operator.manifest.image_digest is None:
        message = "not pinned by @sha256 digest, which other sites require"
        issues.append(ManifestIssue("image", message))
    if not (operator.directory / "Dockerfile").is_file():
        issues.append(ManifestIssue("Dockerfile", "missing: an operator is shipped as an image"))
    for index, part in enumerate(operator.manifest.command):
        script = part.endswith(_SCRIPT_SUFFIXES) and not Path(part).is_absolute()
        if script and not (operator.directory / part).is_file():
            issues.append(ManifestIssue(f"command[{index}]", f"{part} is not in the folder"))
    return issues


def default_search_path(settings: Settings | None = None) -> list[Path]:
    """The folders searched for operators, in order."""
    home = (settings or Settings()).home_dir
    return [REPO_OPERATORS_DIR, home / "operators"]


def _version_key(version: str) -> tuple[int, int, int, int, str]:
    core, _, pre = version.partition("-")
    major, minor, patch = (int(part) for part in core.split("."))
    # A pre-release sorts before its release (1.0.0-rc1 < 1.0.0).
    return (major, minor, patch, 0 if pre else 1, pre)


def scan_operators(search_path: list[Path] | None = None) -> Catalog:
    """Every operator folder on the search path, valid or not; earlier folders shadow later ones."""
    catalog = Catalog()
    seen: set[str] = set()
    for root in search_path if search_path is not None else default_search_path():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST_FILE).is_file()):
            try:
                operator = load_operator(folder)
            except ManifestError as exc:
                catalog.problems.append(exc)
                continue
            if operator.ref not in seen:
                seen.add(operator.ref)
                catalog.operators.append(operator)
    catalog.operators.sort(key=lambda op: (op.manifest.name, _version_key(op.manifest.version)))
    return catalog


def find_operator(
    name: str, version: str | None = None, search_path: list[Path] | None = None
) -> LoadedOperator:
    """The operator ``name@version`` (the highest version when ``version`` is None).

    ``name`` may also be given as ``"name@version"``. Raises :class:`OperatorNotFound`.
    """
    if version is None and "@" in name:
        name, version = name.split("@", 1)
    candidates = [op for op in scan_operators(search_path).operators if op.manifest.name == name]
    if version is not None:
        candidates = [op for op in candidates if op.manifest.version == version]
    if not candidates:
        wanted = f"{name}@{version}" if version else name
        raise OperatorNotFound(f"operator {wanted} not found")
    return max(candidates, key=lambda op: _version_key(op.manifest.version))
