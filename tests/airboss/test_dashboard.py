"""The dashboard's sessions and API (`airboss.dashboard`, `airboss.sessions`), attacks first.

Against the Airboss application in this process (no sockets: every header is the test's), on
the site of conftest.py: alice owns cluster A, bob cluster B. A session starts from a link
alice's key signed for; then each attack a browser (or a page of another site) could make: the
link again, the link too late, another cluster's node, a form posted from another site, no or a
wrong CSRF token, a request after the key was removed, an idle or too old session. Each is
refused with its code and audited, naming the session where there is one. The live updates
(a stream that never ends by itself) are tested on the real `airboss serve`.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

#: conftest.py's types, by name (its module is not importable from here).
AsgiClient = Owner = Response = Site = Any

ORIGIN = "http://127.0.0.1:8677"
#: What a browser adds to the page's own fetch().
SAME_ORIGIN = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin", "Host": "127.0.0.1:8677"}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Page:
    """What the dashboard page holds: its cookie (the browser's) and its CSRF secret."""

    client: AsgiClient
    cookie: str
    csrf: str
    session: str

    def call(self, method: str, path: str, data: dict[str, str] | None = None,
             **headers: str) -> Response:
        sent = {**SAME_ORIGIN, "Cookie": f"fd_dashboard={self.cookie}",
                "X-Flightdeck-CSRF": self.csrf}
        sent.update(headers)
        if method == "GET":
            query = "&".join(f"{k}={v}" for k, v in (data or {}).items())
            return self.client.request("GET", "/dashboard/api" + path, query=query, headers=sent)
        sent.setdefault("Content-Type", "application/json")
        return self.client.request(method, "/dashboard/api" + path, headers=sent,
                                   body=json.dumps(data or {}).encode())


def link_for(client: AsgiClient, owner: Owner, target: str) -> str:
    body = json.dumps({"target": target}).encode()
    answer = client.request("POST", "/v1/dashboard/link", body=body,
                            headers=owner.sign("POST", "/v1/dashboard/link", body=body))
    assert answer.status == 200, answer.body
    link = answer.json["link"]
    assert link.startswith("/dashboard/?link=")
    return str(link.split("link=", 1)[1])


def redeem(client: AsgiClient, link: str, **headers: str) -> Response:
    sent = {**SAME_ORIGIN, "Content-Type": "application/json", **headers}
    return client.request("POST", "/dashboard/api/session", headers=sent,
                          body=json.dumps({"link": link}).encode())


def open_page(client: AsgiClient, owner: Owner, target: str) -> Page:
    answer = redeem(client, link_for(client, owner, target))
    assert answer.status == 200, answer.body
    cookie = answer.headers["set-cookie"]
    secret = cookie.split(";", 1)[0].split("=", 1)[1]
    return Page(client, secret, answer.json["csrf"], answer.json["session"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(site: Site, clock: Clock) -> AsgiClient:
    return site.app(clock, dashboard_idle=600, dashboard_max=3600, dashboard_sessions=2)


def test_a_link_opens_a_session_whose_cookie_the_page_cannot_read_nor_another_site_send(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    fe = site.mac(site.cluster_a[0])
    answer = redeem(app, link_for(app, alice, fe))
    assert answer.status == 200, answer.body
    cookie = [p.strip().lower() for p in answer.headers["set-cookie"].split(";")]
    assert cookie[0].startswith("fd_dashboard=") and len(cookie[0]) == len("fd_dashboard=") + 43
    assert {"httponly", "samesite=strict", "path=/dashboard/", "max-age=3600"} <= set(cookie)
    assert "secure" not in cookie  # plain http on loopback; over TLS it is Secure (below)
    body = answer.json
    assert body["target"] == fe and body["host"] == site.cluster_a[0]
    assert len(body["csrf"]) == 43 and len(body["session"]) == 12
    row = site.last()
    assert (row.operation, row.accepted, row.keyid) == ("dashboard open", True, alice.keyid)
    assert row.token_id == f"session:{body['session']}"


def test_over_tls_the_cookie_is_secure(app: AsgiClient) -> None:
    from starlette.requests import Request
    from starlette.responses import Response as Answer

    answer = Answer()
    request = Request({"type": "http", "scheme": "https", "server": ("fe", 8677), "path": "/",
                       "headers": [], "query_string": b""})
    app.app.state.dashboard._cookie(request, answer, "x" * 43)
    assert "secure" in [p.strip().lower() for p in answer.headers["set-cookie"].split(";")]


def test_the_page_acts_through_the_declared_operations_and_the_audit_names_its_session(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    nodes = page.call("GET", "/v1/nodes", {"target": site.mac(site.cluster_a[0])})
    assert nodes.status == 200, nodes.body
    listed = nodes.json["nodes"]
    assert [n["host"] for n in listed] == site.cluster_a
    assert listed[0]["frontend"] and listed[0]["action"] == "install"
    assert [(n["status"], n["cdrom"]) for n in listed] == [("nostate", None)] * 3, listed
    compute = site.cluster_a[1]
    on = page.call("POST", "/v1/power", {"target": compute, "action": "on"})
    assert on.status == 200, on.body
    row = site.last()
    assert (row.operation, row.target, row.accepted) == ("power on", compute, True)
    assert (row.keyid, row.token_id) == (alice.keyid, f"session:{page.session}")
    again = page.call("GET", "/v1/nodes", {"target": compute})
    assert {n["host"]: n["status"] for n in again.json["nodes"]}[compute] == "active"


def test_a_link_works_once_and_for_60_seconds(
    site: Site, alice: Owner, app: AsgiClient, clock: Clock
) -> None:
    fe = site.mac(site.cluster_a[0])
    link = link_for(app, alice, fe)
    assert redeem(app, link).status == 200
    reused = redeem(app, link)
    assert (reused.status, reused.code) == (401, "token-unknown")
    assert "used already" in reused.json["message"]
    row = site.last()
    assert (row.operation, row.accepted) == ("dashboard open", False)
    assert row.reason.startswith("token-unknown")

    late = link_for(app, alice, fe)
    clock.now += 61
    expired = redeem(app, late)
    assert (expired.status, expired.code) == (401, "token-expired")
    row = site.last()
    assert (row.keyid, row.reason.split(":")[0]) == (alice.keyid, "token-expired")


def test_a_console_token_is_no_dashboard_link_nor_the_reverse(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    fe = site.mac(site.cluster_a[0])
    body = json.dumps({"target": fe, "kind": "vnc"}).encode()
    token = app.request("POST", "/v1/console/token", body=body,
                        headers=alice.sign("POST", "/v1/console/token", body=body)).json["token"]
    refused = redeem(app, token)
    assert (refused.status, refused.code) == (401, "token-mismatch")


def test_another_clusters_node_is_refused_even_when_the_key_covers_it(
    site: Site, alice: Owner, bob: Owner, app: AsgiClient
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    forged = page.call("POST", "/v1/power", {"target": site.cluster_b[1], "action": "on"})
    assert (forged.status, forged.code) == (403, "forbidden")
    row = site.last()
    assert (row.target, row.accepted, row.token_id) == (
        site.cluster_b[1], False, f"session:{page.session}")
    # A key on both clusters' frontends: the session stays on the cluster of its link.
    path = site.tmp / "alice-on-b.pub"
    path.write_text(alice.public_pem)
    site.rocks.ok("add", "host", "key", site.cluster_b[0], f"key={path}", "description=both")
    page2 = open_page(app, alice, site.mac(site.cluster_a[0]))
    wider = page2.call("POST", "/v1/power", {"target": site.cluster_b[1], "action": "on"})
    assert (wider.status, wider.code) == (403, "forbidden")
    assert site.last().reason.startswith("forbidden: session-cluster")


@pytest.mark.parametrize("headers, why", [
    ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site",
      "Content-Type": "application/x-www-form-urlencoded", "X-Flightdeck-CSRF": ""},
     "a form posted from another site"),
    ({"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
     "a page of the same site on another port (the cookie goes there too)"),
    ({"Sec-Fetch-Site": "cross-site"}, "fetch metadata says cross-site"),
    ({"Origin": "null"}, "a sandboxed frame"),
    ({"X-Flightdeck-CSRF": ""}, "no CSRF token"),
    ({"X-Flightdeck-CSRF": "A" * 43}, "a wrong CSRF token"),
    ({"Content-Type": "text/plain"}, "a body that a form can send"),
])
def test_cross_site_requests_are_refused_and_audited(
    site: Site, alice: Owner, app: AsgiClient, headers: dict[str, str], why: str
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    compute = site.cluster_a[1]
    if headers.get("Content-Type", "").startswith("application/x-www"):
        answer = app.request("POST", "/dashboard/api/v1/power", headers={
            **SAME_ORIGIN, "Cookie": f"fd_dashboard={page.cookie}", **headers},
            body=f"target={compute}&action=on".encode())
    else:
        answer = page.call("POST", "/v1/power", {"target": compute, "action": "on"}, **headers)
    assert (answer.status, answer.code) == (403, "cross-site"), why
    row = site.last()
    assert (row.operation, row.accepted) == ("POST /v1/power", False), why
    assert row.reason.startswith("cross-site"), why
    state = page.call("GET", "/v1/nodes", {"target": compute}).json["nodes"]
    assert {n["host"]: n["status"] for n in state}[compute] == "nostate", why


def test_a_post_without_origin_is_refused(site: Site, alice: Owner, app: AsgiClient) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    answer = app.request(
        "POST", "/dashboard/api/v1/power", body=b'{"target":"x","action":"on"}',
        headers={"Cookie": f"fd_dashboard={page.cookie}", "X-Flightdeck-CSRF": page.csrf,
                 "Content-Type": "application/json"})
    assert (answer.status, answer.code) == (403, "cross-site")


def test_no_cookie_or_a_forged_one_is_refused(site: Site, alice: Owner, app: AsgiClient) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    for cookie in ("", "fd_dashboard=" + "B" * 43, "fd_dashboard=short"):
        answer = app.request("GET", "/dashboard/api/v1/nodes", query=f"target={site.cluster_a[0]}",
                             headers={**SAME_ORIGIN, "Cookie": cookie,
                                      "X-Flightdeck-CSRF": page.csrf})
        assert (answer.status, answer.code) == (401, "session-unknown"), cookie
        assert site.last().reason.startswith("session-unknown")


def test_a_request_after_the_key_was_removed_is_refused_and_the_session_ends(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    site.remove_key(alice, site.cluster_a[0])
    answer = page.call("POST", "/v1/power", {"target": site.cluster_a[1], "action": "on"})
    assert (answer.status, answer.code) == (403, "forbidden")
    row = site.last()
    assert (row.keyid, row.token_id, row.accepted) == (alice.keyid, f"session:{page.session}",
                                                       False)
    resumed = page.call("GET", "/session")
    assert (resumed.status, resumed.code) == (403, "forbidden")
    after = page.call("GET", "/v1/nodes", {"target": site.cluster_a[0]})
    assert (after.status, after.code) == (401, "session-expired")
    assert "its key no longer covers its cluster" in after.json["message"]


def test_idle_and_absolute_lifetimes(
    site: Site, alice: Owner, app: AsgiClient, clock: Clock
) -> None:
    fe = site.mac(site.cluster_a[0])
    busy, idle = open_page(app, alice, fe), open_page(app, alice, fe)
    for _ in range(5):  # busy: a request every 9 minutes keeps it (idle 10 min)
        clock.now += 540
        assert busy.call("GET", "/v1/nodes", {"target": fe}).status == 200
    answer = idle.call("GET", "/v1/nodes", {"target": fe})
    assert (answer.status, answer.code) == (401, "session-expired")
    assert "no request for 600 s" in answer.json["message"]
    assert site.last().keyid == alice.keyid
    clock.now += 910  # past its hour, however busy
    old = busy.call("GET", "/v1/nodes", {"target": fe})
    assert (old.status, old.code) == (401, "session-expired")
    assert "it lasts 3600 s at most" in old.json["message"]


def test_a_key_holds_at_most_its_sessions_and_logout_ends_one(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    fe = site.mac(site.cluster_a[0])
    first, second, third = (open_page(app, alice, fe) for _ in range(3))
    assert first.call("GET", "/v1/nodes", {"target": fe}).code == "session-expired"
    assert second.call("GET", "/v1/nodes", {"target": fe}).status == 200
    out = third.call("POST", "/logout")
    assert out.status == 200 and "max-age=0" in out.headers["set-cookie"].lower()
    assert (site.last().operation, site.last().token_id) == ("dashboard close",
                                                             f"session:{third.session}")
    assert third.call("GET", "/v1/nodes", {"target": fe}).code == "session-expired"


def test_a_session_reaches_only_the_pages_operations(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    fe = site.mac(site.cluster_a[0])
    for path, data in (("/v1/dashboard/link", {"target": fe}), ("/v1/token/revoke",
                                                                {"token": "x"})):
        answer = page.call("POST", path, data)
        assert (answer.status, answer.code) == (404, "unknown-operation"), path
    assert page.call("GET", "/nothing").code == "unknown-operation"
    assert site.last().accepted is False


def test_resume_gives_the_page_its_csrf_secret_again_same_origin_only(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    page = open_page(app, alice, site.mac(site.cluster_a[0]))
    again = page.call("GET", "/session", **{"X-Flightdeck-CSRF": ""})
    assert again.status == 200 and again.json["csrf"] == page.csrf
    other = page.call("GET", "/session", **{"Sec-Fetch-Site": "same-site"})
    assert (other.status, other.code) == (403, "cross-site")


# The live updates, on the real Airboss ------------------------------------------------------------


def _events(resp: http.client.HTTPResponse, until: str, timeout: float = 30) -> list[Any]:
    """Events read from an open stream up to the first one named `until`: (name, data)."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    block = b""
    while time.monotonic() < deadline:
        line = resp.readline()  # the socket's timeout bounds each line
        if not line:
            break
        if line.strip():
            block += line
            continue
        text, block = block.decode(), b""
        if not text or text.startswith((":", "retry")):
            continue  # a keep-alive, or the reconnection delay
        name = text.split("\n", 1)[0].removeprefix("event: ")
        got.append((name, json.loads(text.split("data: ", 1)[1])))
        if name == until:
            return got
    raise AssertionError(f"no {until} event within {timeout} s: {got}")


@pytest.mark.slow
def test_the_live_updates_show_changes_and_end_when_the_key_goes(
    site: Site, alice: Owner
) -> None:
    server = site.server("--set", "dashboard_poll=0.5", "--set", "console_recheck=0.5")
    host, port = server.address.split(":")

    def call(method: str, path: str, headers: dict[str, str], body: bytes = b""
             ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request(method, path, body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()

    fe = site.mac(site.cluster_a[0])
    body = json.dumps({"target": fe}).encode()
    status, _h, raw = call("POST", "/v1/dashboard/link",
                           alice.sign("POST", "/v1/dashboard/link", body=body), body)
    assert status == 200, raw
    link = json.loads(raw)["link"].split("link=", 1)[1]
    origin = f"http://{server.address}"
    same = {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    status, headers, raw = call("POST", "/dashboard/api/session", same,
                                json.dumps({"link": link}).encode())
    assert status == 200, raw
    cookie = headers["set-cookie"].split(";", 1)[0]
    csrf = json.loads(raw)["csrf"]
    page = {**same, "Cookie": cookie, "X-Flightdeck-CSRF": csrf}

    stream = http.client.HTTPConnection(host, int(port), timeout=30)
    stream.request("GET", "/dashboard/api/events", headers=page)
    response = stream.getresponse()
    assert response.status == 200
    assert response.getheader("content-type", "").startswith("text/event-stream")
    first = _events(response, "audit")
    nodes = dict(first)["nodes"]["nodes"]
    assert [n["host"] for n in nodes] == site.cluster_a
    compute = site.cluster_a[1]
    status, _h, raw = call("POST", "/dashboard/api/v1/power", page,
                           json.dumps({"target": compute, "action": "on"}).encode())
    assert status == 200, raw
    changed = _events(response, "nodes")
    states = {n["host"]: n["status"] for n in changed[-1][1]["nodes"]}
    assert states[compute] == "active"
    site.remove_key(alice, site.cluster_a[0])
    ended = _events(response, "end")
    assert "no longer covers" in ended[-1][1]["reason"]
    stream.close()
    ops = [r.operation for r in site.audit(20)]
    assert "dashboard events" in ops


def test_the_other_buttons_cdrom_console_and_cluster_power(
    site: Site, alice: Owner, app: AsgiClient
) -> None:
    """What the page's other buttons send: the ISO list and a CD-ROM, a console token for the
    console page, cluster power as a job and its report: each the declared operation."""
    fe_mac, compute = site.mac(site.cluster_a[0]), site.cluster_a[1]
    (site.iso_dir / "debian-12.iso").write_bytes(b"\0" * 2048)
    page = open_page(app, alice, fe_mac)
    isos = page.call("GET", "/v1/isos", {"target": compute})
    assert isos.status == 200 and isos.json["images"] == ["debian-12.iso"], isos.body
    put = page.call("POST", "/v1/cdrom", {"target": compute, "cdrom": "debian-12.iso"})
    assert put.status == 200, put.body
    shown = page.call("GET", "/v1/nodes", {"target": fe_mac}).json["nodes"]
    assert {n["host"]: n["cdrom"] for n in shown}[compute] == "debian-12.iso"
    token = page.call("POST", "/v1/console/token", {"target": compute, "kind": "serial"})
    assert token.status == 200 and token.json["path"].startswith("/console/?token=")
    assert (site.last().operation, site.last().token_id) == ("console token serial",
                                                             f"session:{page.session}")
    job = page.call("POST", "/v1/cluster/power", {"target": fe_mac, "action": "on",
                                                  "wait": "no"})
    assert job.status == 200, job.body
    number = job.json["job"]
    deadline = time.monotonic() + 60
    while True:
        report = page.call("GET", "/v1/job", {"target": fe_mac, "job": str(number)})
        assert report.status == 200, report.body
        if report.json["job"]["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert report.json["job"]["state"] == "done", report.json
    states = page.call("GET", "/v1/nodes", {"target": fe_mac}).json["nodes"]
    assert all(n["status"] != "nostate" for n in states), states


def test_a_lone_vms_session_covers_that_vm_only(
    site: Site, carol: Owner, app: AsgiClient
) -> None:
    page = open_page(app, carol, site.mac(site.plain))
    assert page.call("GET", "/v1/nodes", {"target": site.plain}).status == 200
    other = page.call("POST", "/v1/power", {"target": site.cluster_a[1], "action": "on"})
    assert (other.status, other.code) == (403, "forbidden")


def test_the_link_carries_the_virtual_side_names_after_its_fragment(
    site: Site, alice: Owner
) -> None:
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.pilot.webconsole import dashboard_url
    from flightdeck.services.airboss.local import names_by_mac

    server = site.server()
    compute = site.cluster_a[1]
    assert names_by_mac(site.db, [site.mac(compute), "not-a-mac"]) == {site.mac(compute): compute}
    client = AirbossClient(alice.key, server.address)
    url = dashboard_url(client, site.mac(site.cluster_a[0]), {site.mac(compute): "compute-0-0"})
    page, _, fragment = url.partition("#")
    assert page.startswith(f"{server.url}/dashboard/?link=")
    assert fragment == f"{site.mac(compute).replace(':', '%3A')}=compute-0-0"
    assert "#" not in dashboard_url(client, site.mac(site.cluster_a[0]))
