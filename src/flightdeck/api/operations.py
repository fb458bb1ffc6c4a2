"""Every owner operation, declared once: method, path, typed request and answer, scope rule,
what the audit log calls it, and the service call that serves it.

The Airboss routes and parses requests from these declarations (`airboss.app`, and
`airboss.console` for the console's WebSocket), the OpenAPI document is generated from them
(`api.openapi`), the client sends them (`pilot.client.AirbossClient.call`), and the owner
commands of `rocks` and `pilot` use the client. Adding an operation is adding one declaration
here (and a command that uses it).

`serve` runs in one of the Airboss's database threads after the request gate has verified the
signature, counted the key's rate and authorised the target (`Call.target`: the VM resolved
once, as ids). It returns the answer, or `Later`: the libvirt work left, which the Airboss runs
on its per-container pool. Each `serve` imports its service when called: a client that imports
this module for the types never loads the server side.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from flightdeck.api import wire

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from flightdeck.db.engine import Database
    from flightdeck.services.airboss.access import Target
    from flightdeck.services.airboss.consoles import ConsolePlace
    from flightdeck.services.airboss.nodes import Node

#: The power actions an owner may ask for, each a function of `services.airboss.power` of the
#: same name (`reset` and `shutdown` are Flightdeck's additions to the original's three).
POWER_ACTIONS = ("on", "off", "install", "reset", "shutdown")
#: The consoles an owner may open: the VM's VNC screen (RFB) or its first serial port.
CONSOLE_KINDS = ("vnc", "serial")


class Scope(enum.Enum):
    """Which targets an operation admits for a key (the gate applies it; deny by default)."""

    #: A VM the key covers: a key on a virtual frontend covers that frontend and the VMs of its
    #: cluster; a key on any other VM covers that VM; nothing else (not the physical frontend,
    #: not a container).
    VM = "vm"
    #: No target: the host the key is registered on (its first, if several) is the target.
    KEY = "key"


def keys_only(_request: Any) -> str | None:
    return None


class Targeted(Protocol):
    """A request about one VM."""

    @property
    def target(self) -> str | None: ...


class Expiring(Protocol):
    @property
    def expires(self) -> float: ...


class JobRunner(Protocol):
    """Where the Airboss runs a job: its own thread, apart from the request pools."""

    def __call__(self, work: Callable[[], None]) -> None: ...


class TokenIssuer(Protocol):
    """The Airboss's web console tokens (`airboss.tokens.TokenStore`)."""

    def issue(self, keyid: str, target: str, kind: str) -> tuple[str, Expiring]: ...


Req = TypeVar("Req", bound=Targeted)
Ans = TypeVar("Ans")


@dataclass(frozen=True)
class Call(Generic[Req]):
    """One authorised request, as `serve` gets it."""

    request: Req
    keyid: str
    target: Target
    db: Database
    tokens: TokenIssuer
    #: The Airboss's job threads (None where no job may start, e.g. the console's upgrade).
    jobs: JobRunner | None = None
    #: The request's own transaction, for an operation that only reads (`reads_only`): its
    #: reads go there rather than to a transaction of their own (None: they open one).
    conn: Connection | None = None

    @property
    def reader(self) -> Database | Connection:
        """Where a `reads_only` operation reads: the request's transaction, or the database."""
        return self.conn if self.conn is not None else self.db


@dataclass(frozen=True)
class Later(Generic[Ans]):
    """The libvirt work of a request: on the pool, at most `per_container` at once on
    `container` (None: work that spans containers, bounded by the pool alone)."""

    container: str | None
    work: Callable[[], Ans]


@dataclass(frozen=True)
class Operation(Generic[Req, Ans]):
    """A signed request and its JSON answer."""

    method: str
    path: str
    summary: str
    request: type[Req]
    answer: type[Ans]
    scope: Scope
    #: The audit log's name of a request ("power on").
    audit: Callable[[Req], str]
    #: The audit log's result of an answer ("started ...", "3 node(s)").
    reason: Callable[[Ans], str]
    serve: Callable[[Call[Req]], Ans | Later[Ans]]
    #: What a capability token must allow for this request (`crypto.capability.OPERATIONS`);
    #: None: a token may not make it, only the key's signature.
    right: Callable[[Req], str | None] = keys_only
    #: `serve` only reads the database (what it may leave for later, too): the Airboss runs it
    #: inside the request's own transaction, so its audit row is committed with its nonce,
    #: one transaction for the whole request. Never for one that writes: on SQLite its write
    #: would wait for that transaction's lock.
    reads_only: bool = False


@dataclass(frozen=True)
class Stream(Generic[Req]):
    """A signed WebSocket upgrade (`airboss.console`); `place` finds its far end (database)."""

    method: str
    path: str
    summary: str
    description: str
    request: type[Req]
    scope: Scope
    audit: Callable[[Req], str]
    place: Callable[[Call[Req]], Any]
    right: Callable[[Req], str | None] = keys_only


# Power ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerRequest:
    target: str = wire.target()
    action: str = wire.choice(POWER_ACTIONS)


@dataclass(frozen=True)
class PowerResult:
    target: str
    host: str
    action: str
    result: str


def _power(call: Call[PowerRequest]) -> Later[PowerResult]:
    from flightdeck.services.airboss import power

    req, target = call.request, call.target
    act: Callable[[Database, Target], str] = getattr(power, req.action)  # see POWER_ACTIONS

    def work() -> PowerResult:
        return PowerResult(req.target, target.name, req.action, act(call.db, target))

    return Later(target.container, work)


POWER = Operation(
    method="POST",
    path="/v1/power",
    summary="Power a VM on, off (hard), install (boot action install, then on), reset or "
    "shutdown (ACPI)",
    request=PowerRequest,
    answer=PowerResult,
    scope=Scope.VM,
    audit=lambda r: f"power {r.action}",
    reason=lambda a: a.result,
    serve=_power,
    right=lambda r: f"power.{r.action}",
)


# MACs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MacsRequest:
    target: str = wire.target()
    status: bool = wire.flag()


@dataclass(slots=True)
class NodeInfo:
    """One node of a cluster: its name, its MACs on the cluster's VLAN, its live state.

    Not frozen, unlike the other answers: a MAC list makes one per node per request, and a
    frozen dataclass's `__init__` costs ~3x (1.8 against 0.6 us here; ~60 us a 51-node list)."""

    host: str
    macs: list[str]
    frontend: bool
    status: str | None


@dataclass(frozen=True)
class MacsResult:
    nodes: list[NodeInfo]


def _infos(nodes: list[Node]) -> MacsResult:
    return MacsResult([NodeInfo(n.name, n.macs, n.frontend, n.status) for n in nodes])


def _macs(call: Call[MacsRequest]) -> MacsResult | Later[MacsResult]:
    from flightdeck.services.airboss import nodes

    listed = nodes.cluster_nodes(call.reader, call.target)
    if not call.request.status:
        return _infos(listed)
    return Later(None, lambda: _infos(nodes.with_states(call.db, listed)))


MACS = Operation(
    method="GET",
    path="/v1/macs",
    summary="The MACs and names of the nodes of the target's cluster (and their state)",
    request=MacsRequest,
    answer=MacsResult,
    scope=Scope.VM,
    audit=lambda r: "macs+status" if r.status else "macs",
    reason=lambda a: f"{len(a.nodes)} node(s)",
    serve=_macs,
    right=lambda _r: "macs",
    reads_only=True,
)


@dataclass(frozen=True)
class NodesRequest:
    target: str = wire.target(description="a VM of the cluster (its frontend)")


@dataclass(frozen=True)
class NodeView:
    """One node as the dashboard shows it: its physical-side name, its MACs on the cluster's
    VLAN, whether it is the frontend, its live state (`nostate-error`: its container did not
    answer), its boot action (install, os or run; null: none set) and the image in its CD-ROM
    drive (null: empty)."""

    host: str
    macs: list[str]
    frontend: bool
    status: str
    action: str | None
    cdrom: str | None


@dataclass(frozen=True)
class NodesResult:
    nodes: list[NodeView]


def _nodes_view(call: Call[NodesRequest]) -> Later[NodesResult]:
    from flightdeck.services.airboss import nodes

    listed = nodes.cluster_view(call.db, call.target)

    def work() -> NodesResult:
        live = nodes.with_states(call.db, [d.node for d in listed])
        return NodesResult([
            NodeView(n.name, n.macs, n.frontend, n.status or "nostate", d.action, d.cdrom)
            for n, d in zip(live, listed, strict=True)
        ])  # fmt: skip

    return Later(None, work)


NODES = Operation(
    method="GET",
    path="/v1/nodes",
    summary="The nodes of the target's cluster, frontend first: names, MACs, live state, boot "
    "action and CD-ROM (what the dashboard shows)",
    request=NodesRequest,
    answer=NodesResult,
    scope=Scope.VM,
    audit=lambda _r: "nodes",
    reason=lambda a: f"{len(a.nodes)} node(s)",
    serve=_nodes_view,
    right=lambda _r: "macs",
)


# CD-ROM -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsosRequest:
    target: str = wire.target()


@dataclass(frozen=True)
class IsosResult:
    images: list[str]


def _isos(call: Call[IsosRequest]) -> Later[IsosResult]:
    from flightdeck.services.airboss import media

    return Later(call.target.container, lambda: IsosResult(media.iso_images(call.db, call.target)))


ISOS = Operation(
    method="GET",
    path="/v1/isos",
    summary="The CD-ROM images the target VM may use (its container's ISO directory)",
    request=IsosRequest,
    answer=IsosResult,
    scope=Scope.VM,
    audit=lambda _r: "isos",
    reason=lambda a: f"{len(a.images)} image(s)",
    serve=_isos,
    right=lambda _r: "cdrom",
)


@dataclass(frozen=True)
class CdromRequest:
    target: str = wire.target()
    cdrom: str = wire.text(
        min_length=1, max_length=1024, description="an image name from /v1/isos, or none"
    )

    @property
    def clears(self) -> bool:
        return self.cdrom.strip().lower() == "none"


@dataclass(frozen=True)
class CdromResult:
    target: str
    host: str
    cdrom: str | None


def _cdrom(call: Call[CdromRequest]) -> Later[CdromResult]:
    from flightdeck.services.airboss import media

    req, target = call.request, call.target

    def work() -> CdromResult:
        path = media.set_iso(call.db, call.keyid, target, req.cdrom)
        return CdromResult(req.target, target.name, path)

    return Later(target.container, work)


CDROM = Operation(
    method="POST",
    path="/v1/cdrom",
    summary="Put an image of the ISO directory in the VM's CD-ROM drive, or none, for its "
    "next start",
    request=CdromRequest,
    answer=CdromResult,
    scope=Scope.VM,
    audit=lambda r: "cdrom clear" if r.clears else "cdrom set",
    reason=lambda a: f"cdrom {a.cdrom}" if a.cdrom else "cdrom cleared",
    serve=_cdrom,
    right=lambda _r: "cdrom",
)


# Consoles ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConsoleRequest:
    target: str | None = wire.target(
        optional=True, description="the VM (required with a signature; optional with a token)"
    )
    kind: str = wire.choice(CONSOLE_KINDS)
    token: str | None = wire.text(
        min_length=43,
        max_length=43,
        description="a web console token instead of a signature",
        optional=True,
    )


def _console_place(call: Call[ConsoleRequest]) -> ConsolePlace:
    from flightdeck.services.airboss import consoles

    return consoles.console_place(call.db, call.target)


CONSOLE = Stream(
    method="GET",
    path="/v1/console",
    summary="A console of the VM as a WebSocket (RFC 6455): its VNC (RFB) byte stream or its "
    "serial console, binary frames both ways",
    description="Send this GET with Upgrade: websocket. Authenticated EITHER by the RFC 9421 "
    "signature of the upgrade request (as every operation; target and kind in the signed "
    "query) OR by token= (a web console token from POST /v1/console/token; target= then "
    "optional, and must match). Refusals are the JSON errors below, as the answer to the "
    "upgrade request. A session ends with a close frame: 1000 when the VM's console closed "
    "(it stopped), 4408 after the idle timeout, 1001 when the Airboss shuts down. A plain "
    "GET without Upgrade is refused with invalid-request.",
    request=ConsoleRequest,
    scope=Scope.VM,
    audit=lambda r: f"console {r.kind}",
    place=_console_place,
    right=lambda _r: "console",
)


@dataclass(frozen=True)
class TokenRequest:
    target: str = wire.target()
    kind: str = wire.choice(CONSOLE_KINDS)


@dataclass(frozen=True)
class ConsoleToken:
    token: str
    expires: int = wire.described("Unix time, seconds")
    path: str = wire.described("the browser console page")


def _console_token(call: Call[TokenRequest]) -> ConsoleToken:
    kind = call.request.kind
    token, grant = call.tokens.issue(call.keyid, call.target.given, kind)
    query = urllib.parse.urlencode({"token": token, "kind": kind})
    return ConsoleToken(token, int(grant.expires), f"{PAGE}?{query}")


#: The browser console's page (`airboss.web`), which a token opens.
PAGE = "/console/"

CONSOLE_TOKEN = Operation(
    method="POST",
    path="/v1/console/token",
    summary="A web console token: single-use, valid 60 s, bound to this key, the target "
    "and the kind; kept in the Airboss's memory only",
    request=TokenRequest,
    answer=ConsoleToken,
    scope=Scope.VM,
    audit=lambda r: f"console token {r.kind}",
    reason=lambda a: f"web token valid until {a.expires}",
    serve=_console_token,
    right=lambda _r: "console",
)


# The dashboard ----------------------------------------------------------------------------------

#: The dashboard's page (`airboss.web`); a link opens it with `?link=<one-time token>`.
DASHBOARD_PAGE = "/dashboard/"
#: The console-token store's kind of a dashboard link (never a console's kind).
DASHBOARD_KIND = "dashboard"


@dataclass(frozen=True)
class DashboardRequest:
    target: str = wire.target(description="a VM of the cluster (its frontend)")


@dataclass(frozen=True)
class DashboardLink:
    link: str = wire.described("the page with the one-time link token, from the Airboss's URL")
    expires: int = wire.described("Unix time, seconds: the link must be opened by then")


def _dashboard_link(call: Call[DashboardRequest]) -> DashboardLink:
    token, grant = call.tokens.issue(call.keyid, call.target.given, DASHBOARD_KIND)
    query = urllib.parse.urlencode({"link": token})
    return DashboardLink(f"{DASHBOARD_PAGE}?{query}", int(grant.expires))


DASHBOARD = Operation(
    method="POST",
    path="/v1/dashboard/link",
    summary="A one-time link to the web dashboard of the target's cluster: single-use, valid "
    "60 s; opening it starts a browser session bound to this key and that cluster. Signed "
    "with the key only",
    request=DashboardRequest,
    answer=DashboardLink,
    scope=Scope.VM,
    audit=lambda _r: "dashboard link",
    reason=lambda a: f"link valid until {a.expires}",
    serve=_dashboard_link,
)


# Capability tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevokeRequest:
    token: str = wire.text(
        min_length=1,
        max_length=16_384,
        description="the token to revoke (its base64 line); it must be rooted in your key",
    )

    @property
    def target(self) -> str | None:
        return None


@dataclass(frozen=True)
class RevokeResult:
    token_id: str
    host: str
    revoked: bool = wire.described("false when it was revoked already")


def _revoke(call: Call[RevokeRequest]) -> RevokeResult:
    from flightdeck.services.airboss import revocations

    token_id = revocations.owned_token_id(call.db, call.keyid, call.request.token)
    done = revocations.revoke_by_owner(call.db, token_id, call.target.host_id, call.keyid)
    return RevokeResult(token_id, call.target.name, done)


REVOKE = Operation(
    method="POST",
    path="/v1/token/revoke",
    summary="Revoke a capability token rooted in your key (and every token attenuated from "
    "it): refused from the next request on, after restarts too. Signed with the key only",
    request=RevokeRequest,
    answer=RevokeResult,
    scope=Scope.KEY,
    audit=lambda _r: "token revoke",
    reason=lambda a: f"revoked {a.token_id[:16]}..." if a.revoked else "revoked already",
    serve=_revoke,
)


# The audit chain ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuditRequest:
    target: str = wire.target(description="a VM of the cluster whose audit chain to list")
    since: str | None = wire.text(
        min_length=1, max_length=10, description="the first entry's seq (default 1)",
        optional=True,
    )  # fmt: skip


@dataclass(frozen=True)
class ChainEntry:
    chain: str
    seq: int
    at: str = wire.described("UTC, ISO 8601 with microseconds, as hashed")
    client: str | None = None
    keyid: str | None = None
    operation: str | None = None
    target: str | None = None
    accepted: bool = False
    reason: str | None = None
    token_id: str | None = None
    restrictions: str | None = None
    prev: str = ""
    hash: str = ""


@dataclass(frozen=True)
class ChainHead:
    chain: str
    seq: int
    hash: str
    signed_at: int = wire.described("Unix time, seconds")
    signature: str = wire.described("Ed25519 by the Airboss's audit key, base64")


@dataclass(frozen=True)
class AuditChain:
    entries: list[ChainEntry]
    head: ChainHead
    #: Where a pruned chain now starts (the last pruned entry, signed when it was pruned).
    checkpoint: ChainHead | None = None


def _audit_chain(call: Call[AuditRequest]) -> AuditChain:
    from flightdeck.errors import UserError
    from flightdeck.services.airboss import chain

    since_text = call.request.since or "1"
    if not since_text.isdigit() or int(since_text) < 1:
        raise UserError(f"since={since_text}: give an entry number (1 or more)")
    name = chain.chain_of(call.target.host_id, call.target.cluster_id)
    entries, head = chain.read(call.reader, name, int(since_text))
    signed = chain.signed_head(chain.airboss_key(), head)
    cut = chain.checkpoint_of(call.reader, name)
    return AuditChain(
        [ChainEntry(**e) for e in entries],
        ChainHead(**signed),
        ChainHead(**cut) if cut else None,
    )


AUDIT = Operation(
    method="GET",
    path="/v1/audit",
    summary="The audit hash chain of the target's cluster (from since=), with its head signed "
    "by the Airboss's audit key (GET /.well-known/flightdeck-audit-key)",
    request=AuditRequest,
    answer=AuditChain,
    scope=Scope.VM,
    audit=lambda _r: "audit",
    reason=lambda a: f"{len(a.entries)} entries, head {a.head.seq}",
    serve=_audit_chain,
    right=lambda _r: "audit",
    reads_only=True,
)


# Cluster power, in order, as a job ------------------------------------------------------------

#: What a cluster power job may do: in order (frontend first, computes once it is ready).
CLUSTER_ACTIONS = ("on", "off", "install")


@dataclass(frozen=True)
class ClusterPowerRequest:
    target: str = wire.target(description="the cluster's virtual frontend: a MAC or its name")
    action: str = wire.choice(CLUSTER_ACTIONS)
    wait: bool = wire.flag(
        default=True,
        description="on/install: start the computes only once the frontend is ready (its "
        "guest agent answers); no: start them right after it",
    )
    max_parallel: int | None = wire.integer(
        1, 64, optional=True, description="computes started at once per container"
    )
    frontend: bool = wire.flag(
        default=True,
        description="power the frontend too (no: its computes only, the frontend left as it "
        "is: what the owner's command asks when it runs on the virtual frontend itself)",
    )


@dataclass(frozen=True)
class JobInfo:
    """A cluster power job; times are Unix seconds."""

    job: int
    action: str
    state: str = wire.described("running, done, failed or interrupted")
    frontend: str = wire.described("the cluster's virtual frontend")
    started: int = wire.described("Unix time, seconds")
    finished: int | None = wire.described("Unix time, seconds; null while it runs")
    summary: str | None = wire.described("what it did, once it ended")


def _job(row: Any) -> JobInfo:
    return JobInfo(
        row.id, row.action, row.state, row.frontend, row.created, row.finished, row.summary
    )


def _cluster_power(call: Call[ClusterPowerRequest]) -> JobInfo:
    from flightdeck.services.airboss import jobs

    if call.jobs is None:  # pragma: no cover - the Airboss always gives its runner
        raise RuntimeError("no job runner")
    req = call.request
    row = jobs.start_power_job(
        call.db, call.keyid, call.target, req.action, wait=req.wait,
        max_parallel=req.max_parallel, run=call.jobs, with_frontend=req.frontend,
    )  # fmt: skip
    return _job(row)


CLUSTER_POWER = Operation(
    method="POST",
    path="/v1/cluster/power",
    summary="Power the target's whole cluster in order, as a job: on/install start the "
    "frontend, wait until it is ready, then start the computes in parallel; off stops the "
    "computes (ACPI, then off), then the frontend. Answers at once with the job; it goes on "
    "if the client disconnects (GET /v1/job follows it)",
    request=ClusterPowerRequest,
    answer=JobInfo,
    scope=Scope.VM,
    audit=lambda r: f"cluster power {r.action}",
    reason=lambda a: f"job {a.job} started",
    serve=_cluster_power,
)


@dataclass(frozen=True)
class JobsRequest:
    target: str = wire.target(description="a VM of the cluster (its frontend)")


@dataclass(frozen=True)
class JobsResult:
    jobs: list[JobInfo]


def _list_jobs(call: Call[JobsRequest]) -> JobsResult:
    from flightdeck.services.airboss import jobs

    return JobsResult([_job(j) for j in jobs.list_jobs(call.reader, call.target)])


JOBS = Operation(
    method="GET",
    path="/v1/jobs",
    summary="The newest jobs (at most 50) of the target's cluster",
    request=JobsRequest,
    answer=JobsResult,
    scope=Scope.VM,
    audit=lambda _r: "jobs",
    reason=lambda a: f"{len(a.jobs)} job(s)",
    serve=_list_jobs,
    reads_only=True,
)


@dataclass(frozen=True)
class JobRequest:
    target: str = wire.target(description="a VM of the cluster (its frontend)")
    job: int = wire.integer(1, 2_000_000_000)
    after: int | None = wire.integer(
        0, 2_000_000_000, optional=True, description="lines already read (to follow a job)"
    )


@dataclass(frozen=True)
class JobLine:
    """One node's outcome: `line` counts from 1, `at_ms` from the job's start."""

    line: int
    node: str
    ok: bool
    message: str
    at_ms: int


@dataclass(frozen=True)
class JobReport:
    job: JobInfo
    lines: list[JobLine]
    more: bool = wire.described("more lines follow: ask again with after=")


def _report_job(call: Call[JobRequest]) -> JobReport:
    from flightdeck.services.airboss import jobs

    req = call.request
    row, events, more = jobs.report_job(call.reader, call.target, req.job, req.after or 0)
    lines = [JobLine(e.seq, e.node, e.ok, e.message, e.at_ms) for e in events]
    return JobReport(_job(row), lines, more)


JOB = Operation(
    method="GET",
    path="/v1/job",
    summary="A job of the target's cluster: its state and one line per node (from after=)",
    request=JobRequest,
    answer=JobReport,
    scope=Scope.VM,
    audit=lambda r: f"job {r.job}",
    reason=lambda a: f"job {a.job.job} {a.job.state}",
    serve=_report_job,
    reads_only=True,
)


# The unsigned health check ----------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    status: str


HEALTH_PATH = "/health"

#: Every operation, in the order the OpenAPI document lists them.
OPERATIONS: tuple[Operation[Any, Any] | Stream[Any], ...] = (
    POWER,
    MACS,
    NODES,
    ISOS,
    CDROM,
    CONSOLE,
    CONSOLE_TOKEN,
    CLUSTER_POWER,
    JOBS,
    JOB,
    REVOKE,
    AUDIT,
    DASHBOARD,
)
#: What a dashboard session may do: the operations its page uses, through the same gate
#: (`airboss.dashboard`). Not a new link (a session would outlive its lifetime), not a
#: revocation (keys only), not the console's WebSocket (the page asks for a console token).
SESSION_OPERATIONS: tuple[Operation[Any, Any], ...] = (
    POWER, MACS, NODES, ISOS, CDROM, CONSOLE_TOKEN, CLUSTER_POWER, JOBS, JOB, AUDIT,
)  # fmt: skip
