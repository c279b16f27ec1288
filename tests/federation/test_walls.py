"""The federation package cannot reach images: none of its modules imports the object store or
the index, and a full publish/pull/approve cycle loads no code that could reach stored data
(no store, no index backend, no S3 or OpenSearch client)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import openjip.federation
from openjip.config import Settings
from openjip.web.service import WebService

PACKAGE = Path(openjip.federation.__file__).parent
FORBIDDEN = ("openjip.storage", "openjip.index", "openjip.receiver", "openjip.ingest")
# Loaded through `openjip.workflows` (which uses the index's Query type) the index package
# itself may appear; its backends and every data client must not.
NEVER_LOADED = (
    "openjip.storage",
    "openjip.index.sqlite",
    "openjip.index.opensearch",
    "openjip.receiver",
    "openjip.ingest",
    "minio",
    "opensearchpy",
    "sqlite3",
)


def test_no_module_of_the_package_imports_storage_or_index() -> None:
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{module.name} imports {name}"


def test_the_package_uses_only_the_index_free_parts_of_statistics() -> None:
    """Counting happens behind the site's web service; federation only talks about it."""
    index_free = {"openjip.statistics.question", "openjip.statistics.loopback"}
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "openjip.statistics"
            ):
                assert node.module in index_free, f"{module.name} imports {node.module}"
    for name in index_free:
        source = (PACKAGE.parent / "statistics" / f"{name.rsplit('.', 1)[1]}.py").read_text()
        assert "openjip.index" not in source and "openjip.storage" not in source, name


def test_a_whole_exchange_loads_no_storage_or_index(tmp_path: Path) -> None:
    # The sites' web services (which screen for patient data) run here, outside the process
    # that exchanges: that one must load no backend.
    webs = {
        name: WebService(Settings(home=tmp_path / name, web={"host": "127.0.0.1", "port": 0}))
        for name in ("a", "b")
    }
    for web in webs.values():
        web.start()
    spec = Path(__file__).parent / "data" / "shared-body-mask.yaml"
    script = f"""
import sys, yaml
from pathlib import Path
from openjip.config.settings import FederationSettings
from openjip.federation.exchange import Exchange, referenced_operators
from openjip.federation.service import FederationService
refs = referenced_operators(yaml.safe_load(Path({str(spec)!r}).read_text()))
def settings(web):
    return FederationSettings(port=0, pull_interval_seconds=0, site_web_url=web,
        allowed_operators={{ref: "sha256:" + "ab" * 32 for ref in refs}})
a = Exchange(Path({str(tmp_path)!r}) / "a", settings({webs["a"].url!r})); a.init("a")
b = Exchange(Path({str(tmp_path)!r}) / "b", settings({webs["b"].url!r})); b.init("b")
service = FederationService(a, log_level="warning"); service.start()
a.peers.add("b", "http://127.0.0.1:1", b.identity.public_key)
b.peers.add("a", service.url, a.identity.public_key, "auto")
a.publish(Path({str(spec)!r}))
assert [r.outcome for r in b.pull()] == ["approved"], b.pull()
service.stop()
loaded = [name for name in sys.modules if name.startswith({NEVER_LOADED!r})]
print(loaded)
assert not loaded, loaded
"""
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
    finally:
        for web in webs.values():
            web.stop()
    assert result.returncode == 0, result.stdout + result.stderr
