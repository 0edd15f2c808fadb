"""The marketing pipeline's publish variant (examples/marketing_video/publish.json) as the README
runs it: saved through a real `nodeloom serve`, started by a signed webhook delivery, drafted by
the embedded LLM, held at the approval until a person approves it through the API, then POSTed
once to a webhook receiver (a real HTTP server on 127.0.0.1); and a schedule on the same graph.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from databases import database_url
from processes import ApiServer, cli_env, create_key

from nodeloom.api.client import ApiClientError, Client
from nodeloom.api.schemas import RunState

pytestmark = pytest.mark.slow

PUBLISH = Path(__file__).resolve().parent.parent / "examples" / "marketing_video" / "publish.json"


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[Any] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ads"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("publish")
    env = cli_env(home, NODELOOM_LLM_THREADS="1")
    with database_url("sqlite", home) as db_url, ApiServer(
        db_url, home, options=["--workers", "1", "--allow-private-network"], env=env,
    ).running() as instance:
        yield instance


@pytest.fixture(scope="module")
def api(server: ApiServer) -> Iterator[Client]:
    with Client(server.url, api_key=create_key(server.db_url, server.env, "shop", "admin")) as client:
        yield client


@pytest.fixture(scope="module")
def graph_id(api: Client, receiver: Receiver) -> str:
    document = json.loads(PUBLISH.read_text())
    document["inputs"]["publish_url"]["default"] = receiver.url  # as the README's jq line sets it
    return api.create_graph(document).id


def test_a_signed_delivery_drafts_the_ad_waits_for_approval_and_publishes_it_once(
    api: Client, server: ApiServer, receiver: Receiver, graph_id: str,
) -> None:
    trigger = api.create_trigger(graph_id, name="new product",
                                 input_map={"product": "/product/title", "description": "/product/body"})
    body = json.dumps({"event": "products/create",
                       "product": {"title": "Tea Timer", "body": "A sand timer that glows when your tea is ready."}})
    digest = hmac.new(trigger.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    fired = httpx.post(f"{server.url}/v1/triggers/{trigger.id}", content=body,
                       headers={"Content-Type": "application/json", "X-Nodeloom-Signature": f"sha256={digest}",
                                "X-Nodeloom-Delivery": "shop-evt-1"})
    assert fired.status_code == 202, fired.text
    run_id = fired.json()["run_id"]

    run = api.wait(run_id, timeout=120)
    assert run.status is RunState.WAITING, run.errors
    assert {node: info.state for node, info in run.nodes.items()} == {
        "request": "done", "draft": "done", "approve": "waiting", "post": "pending", "publish": "pending"}
    asked = run.nodes["approve"].approval
    assert asked is not None and asked.review["kind"] == "text"
    ad = asked.review["value"]
    assert isinstance(ad, str) and ad.strip()
    assert receiver.received == []  # nothing is published before the approval

    api.approve(run_id, "approve")
    done = api.wait(run_id, timeout=120)
    assert done.status is RunState.SUCCEEDED, done.errors
    assert done.outputs == {"ad": ad, "published": 200}
    assert done.nodes["draft"].state == "cached"  # the draft is not written again
    assert receiver.received == [{"product": "Tea Timer", "ad": ad, "call_to_action": "Order yours today"}]


def test_a_schedule_of_the_publish_graph_is_accepted_and_a_bad_cron_is_422(api: Client, graph_id: str) -> None:
    schedule = api.create_schedule(graph_id, "0 9 * * 1-5", timezone="Europe/Paris",
                                   inputs={"product": "Loom Lamp"})
    assert schedule.enabled and schedule.next_fire_at > time.time()
    assert api.get_schedule(schedule.id).cron == "0 9 * * 1-5"
    with pytest.raises(ApiClientError) as bad:
        api.create_schedule(graph_id, "0 25 * * *", timezone="Europe/Paris")
    assert (bad.value.status, bad.value.code) == (422, "invalid_cron")
