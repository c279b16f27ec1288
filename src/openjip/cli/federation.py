"""``openjip federation ...``: site identity, peers, publishing, pulling, approving, audit,
and the federation service.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from openjip.access.at_rest import protect_data_at_rest
from openjip.cli.environment import configure_logging, console, err_console, fail, load_settings
from openjip.cli.federation_questions import ask, question_app
from openjip.federation.errors import FederationError
from openjip.federation.exchange import Exchange

app = typer.Typer(
    name="federation",
    help="Exchange signed workflow specs with trusted peer sites (never images).",
    no_args_is_help=True,
)
peer_app = typer.Typer(name="peer", help="Trusted peer sites.", no_args_is_help=True)
app.add_typer(peer_app)
app.add_typer(question_app)
app.command()(ask)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _exchange() -> Exchange:
    settings = load_settings()
    return Exchange(settings.home_dir, settings.federation)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@app.command()
def init(
    name: str = typer.Option(
        socket.gethostname(), "--name", help="Name shown to peers (default: host name)."
    ),
) -> None:
    """Create this site's Ed25519 key pair and print its site id and public key.

    Example: openjip federation init --name hospital-a
    """
    try:
        identity = _exchange().init(name)
    except FederationError as error:
        fail(str(error))
    console.print(f"site id     {identity.site_id}")
    console.print(f"public key  {identity.public_key}")
    err_console.print("Give the public key and your federation URL to the sites that trust you.")


@app.command()
def identity(as_json: bool = JSON_OPTION) -> None:
    """Print this site's name, id and public key.

    Example: openjip federation identity --json
    """
    try:
        site = _exchange().identity
    except FederationError as error:
        fail(str(error))
    data = {"name": site.name, "site_id": site.site_id, "public_key": site.public_key}
    if as_json:
        _print_json(data)
    else:
        for key, value in data.items():
            console.print(f"{key:<11} {value}")


@peer_app.command("add")
def peer_add(
    name: str = typer.Argument(..., help="Local name of the peer."),
    url: str = typer.Argument(..., help="The peer's federation URL, e.g. https://b.example:8443"),
    public_key: str = typer.Argument(..., help="The peer's public key (from its `init`)."),
    policy: str = typer.Option(
        "manual", "--policy", help="manual: a person approves each bundle; auto: accept verified."
    ),
    questions: str = typer.Option(
        "manual",
        "--questions",
        help="Statistics questions of this peer: manual (a person approves), auto, refuse.",
    ),
) -> None:
    """Trust a peer site.

    Example: openjip federation peer add hospital-b https://b.example:8443 MCowBQYDK2Vw...
    """
    if policy not in ("manual", "auto"):
        fail(f"--policy must be manual or auto, not {policy!r}", code=2)
    if questions not in ("manual", "auto", "refuse"):
        fail(f"--questions must be manual, auto or refuse, not {questions!r}", code=2)
    exchange = _exchange()
    try:
        peer = exchange.peers.add(name, url, public_key, policy, questions)  # type: ignore[arg-type]
    except FederationError as error:
        fail(str(error))
    exchange.audit.append(
        "peer-add", peer=name, url=url, site_id=peer.site_id, policy=policy, questions=questions
    )
    console.print(f"peer {name} added (site id {peer.site_id}, policy {policy})")


@peer_app.command("list")
def peer_list(as_json: bool = JSON_OPTION) -> None:
    """List trusted peers.

    Example: openjip federation peer list --json
    """
    peers = _exchange().peers.entries()
    if as_json:
        _print_json([{**peer.model_dump(), "site_id": peer.site_id} for peer in peers])
        return
    table = Table("name", "url", "policy", "questions", "site id")
    for peer in peers:
        table.add_row(peer.name, peer.url, peer.policy, peer.questions, peer.site_id)
    console.print(table)


@peer_app.command("remove")
def peer_remove(name: str = typer.Argument(..., help="Local name of the peer.")) -> None:
    """Stop trusting a peer.

    Example: openjip federation peer remove hospital-b
    """
    exchange = _exchange()
    try:
        exchange.peers.remove(name)
    except FederationError as error:
        fail(str(error))
    exchange.audit.append("peer-remove", peer=name)
    console.print(f"peer {name} removed")


@app.command()
def publish(spec: Path = typer.Argument(..., help="Workflow spec (YAML) to publish.")) -> None:
    """Sign a workflow spec with the operators it uses and offer it to peers.

    Example: openjip federation publish dags/workflows/ct-body-mask.yaml
    """
    try:
        bundle = _exchange().publish(spec)
    except FederationError as error:
        fail(str(error))
    body = bundle["body"]
    console.print(f"published {body['workflow_id']} #{body['sequence']}")


@app.command()
def pull(
    peer: str | None = typer.Option(None, "--peer", help="Only this peer (default: all)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Fetch and verify the bundles of peers; verified ones wait in `pending`.

    Exit code 1 when a peer was unreachable or a bundle was rejected.

    Example: openjip federation pull --peer hospital-a
    """
    try:
        results = _exchange().pull(peer)
    except FederationError as error:
        fail(str(error))
    if as_json:
        _print_json([result.__dict__ for result in results])
    else:
        table = Table("peer", "workflow", "outcome", "detail")
        for result in results:
            table.add_row(result.peer, result.workflow_id, result.outcome, result.message)
        console.print(table)
    if any(result.outcome in ("rejected", "unreachable") for result in results):
        raise typer.Exit(1)


@app.command()
def pending(as_json: bool = JSON_OPTION) -> None:
    """List verified bundles waiting for approval.

    Example: openjip federation pending
    """
    items = _exchange().inbox.pending()
    rows: list[dict[str, Any]] = [
        {
            "id": item.bundle_id,
            "peer": item.peer,
            "workflow_id": item.workflow_id,
            "sequence": item.sequence,
            "operators": [
                op["name"] + "@" + op["version"] for op in item.bundle["body"]["operators"]
            ],
        }
        for item in items
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "peer", "workflow", "#", "operators")
    for row in rows:
        table.add_row(
            row["id"],
            row["peer"],
            row["workflow_id"],
            str(row["sequence"]),
            ", ".join(row["operators"]),
        )
    console.print(table)


@app.command()
def approve(
    bundle_id: str = typer.Argument(..., help="Id (or unique prefix) from `pending`."),
) -> None:
    """Approve a pending bundle: its workflow becomes a DAG of this site.

    Example: openjip federation approve 3f2a9c1d
    """
    try:
        path = _exchange().approve(bundle_id)
    except FederationError as error:
        fail(str(error))
    console.print(f"approved; workflow written to {path}")


@app.command()
def reject(
    bundle_id: str = typer.Argument(..., help="Id (or unique prefix) from `pending`."),
) -> None:
    """Reject a pending bundle for good.

    Example: openjip federation reject 3f2a9c1d
    """
    try:
        item = _exchange().reject(bundle_id)
    except FederationError as error:
        fail(str(error))
    console.print(f"rejected {item.workflow_id} #{item.sequence} from {item.peer}")


@app.command()
def audit(
    verify: bool = typer.Option(False, "--verify", help="Check the hash chain; exit 1 if broken."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the federation audit log (and check its hash chain).

    Example: openjip federation audit --verify
    """
    log = _exchange().audit
    entries = list(log.entries())
    if as_json:
        _print_json(entries)
    else:
        table = Table("#", "time", "event", "details")
        for entry in entries:
            table.add_row(
                str(entry.get("seq")),
                str(entry.get("time")),
                str(entry.get("event")),
                json.dumps(entry.get("details"), sort_keys=True),
            )
        console.print(table)
    if verify:
        breaks = log.verify_chain()
        if breaks:
            for item in breaks:
                err_console.print(f"[bold red]line {item.line}:[/] {item.message}")
            raise typer.Exit(1)
        err_console.print(f"audit chain intact ({len(entries)} entries)")


@app.command()
def serve() -> None:
    """Run the federation service in the foreground (Ctrl-C stops it).

    Example: OPENJIP_FEDERATION__PORT=8443 openjip federation serve
    """
    from openjip.asgi import ServerError
    from openjip.federation.service import FederationService

    settings = load_settings()
    configure_logging(settings)
    protect_data_at_rest(settings)
    service = FederationService(
        Exchange(settings.home_dir, settings.federation), log_level=settings.log_level
    )
    try:
        service.start()
    except (FederationError, ServerError) as error:
        fail(str(error))
    for line in service.endpoints():
        console.print(line)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    service.stop()
