"""Webhook triggers and cron schedules against real `nodeloom serve` processes.

Two servers share one PostgreSQL schema (as a fleet behind a load balancer would): every
schedule fire must start exactly one run. A SQLite server is stopped and started again to
show the missed-fire policies. Servers look for due schedules every 0.2 s.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from databases import database_url
from processes import cli_env
from test_api_server import ApiServer, _create_key_cli, greeting_graph, sleeping_graph

from nodeloom.api.client import ApiClientError, Client
from nodeloom.api.signing import signature
from nodeloom.testing import wait_until

FAST_SCHEDULER = {"NODELOOM_SCHEDULE_TICK": "0.2", "NODELOOM_SCHEDULE_GRACE": "3"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    home = tmp_path_factory.mktemp("automation-pg")
    with database_url("postgres", home, "nl_auto") as db_url:
        first = ApiServer(db_url, home / "a", env=cli_env(home / "a", **FAST_SCHEDULER))
        second = ApiServer(db_url, home / "b", env=cli_env(home / "b", **FAST_SCHEDULER))
        for server in (first, second):
            server.home.mkdir()
        first.start()  # the first one migrates the schema; the second finds it current
        second.start()
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


@pytest.fixture(scope="module")
def api(fleet: tuple[ApiServer, ApiServer]) -> Iterator[Client]:
    key = _create_key_cli(fleet[0], "shop", "admin")
    with Client(fleet[0].url, api_key=key) as client:
        yield client


def _run_ids_by_key(client: Client, graph_id: str) -> Counter[str]:
    return Counter(run.idempotency_key or "" for run in
                   (client.get_run(summary.id) for summary in client.list_runs(graph_id=graph_id, limit=500)))


# -- triggers --------------------------------------------------------------------------


def test_a_signed_delivery_starts_a_run_with_the_body_as_inputs(api: Client) -> None:
    graph = api.create_graph(greeting_graph("greet-on-webhook"))
    trigger = api.create_trigger(graph.id, name="new product")
    assert trigger.url == f"/v1/triggers/{trigger.id}" and len(trigger.secret) == 64
    fired = api.deliver(trigger.id, trigger.secret, {"name": "Loom Lamp"})
    assert fired.created
    assert api.wait(fired.run_id, timeout=60).outputs == {"greeting": "Hello Loom Lamp!"}
    assert all(not hasattr(listed, "secret") for listed in api.list_triggers())


def test_a_delivery_id_sent_again_starts_no_second_run(api: Client) -> None:
    graph = api.create_graph(greeting_graph("greet-once"))
    trigger = api.create_trigger(graph.id)
    first = api.deliver(trigger.id, trigger.secret, {"name": "Ada"}, delivery_id="evt-1")
    again = api.deliver(trigger.id, trigger.secret, {"name": "Ada"}, delivery_id="evt-1")
    assert first.created and not again.created and again.run_id == first.run_id
    with pytest.raises(ApiClientError) as reused:
        api.deliver(trigger.id, trigger.secret, {"name": "Bob"}, delivery_id="evt-1")
    assert reused.value.status == 409 and reused.value.code == "idempotency_key_reused"
    assert sum(_run_ids_by_key(api, graph.id).values()) == 1


def test_a_delivery_without_the_right_signature_is_refused(api: Client, fleet: tuple[ApiServer, ApiServer]) -> None:
    graph = api.create_graph(greeting_graph("greet-signed"))
    trigger = api.create_trigger(graph.id)
    body = json.dumps({"name": "Eve"}).encode()
    url = f"{fleet[0].url}/v1/triggers/{trigger.id}"
    unsigned = httpx.post(url, content=body)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "signature_required"
    forged = httpx.post(url, content=body, headers={"X-Nodeloom-Signature": signature("not-the-secret", body)})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "signature_mismatch"
    tampered = httpx.post(url, content=b'{"name": "Mallory"}',
                          headers={"X-Nodeloom-Signature": signature(trigger.secret, body)})
    assert tampered.status_code == 401
    unknown = httpx.post(f"{fleet[0].url}/v1/triggers/{uuid.uuid4().hex}", content=body,
                         headers={"X-Nodeloom-Signature": signature(trigger.secret, body)})
    assert unknown.status_code == 404
    assert api.list_runs(graph_id=graph.id).total == 0


def test_a_body_that_does_not_fit_the_inputs_is_422_listing_each_problem(
        api: Client, fleet: tuple[ApiServer, ApiServer]) -> None:
    graph = api.create_graph(greeting_graph("greet-strict"))
    trigger = api.create_trigger(graph.id)
    with pytest.raises(ApiClientError) as misfit:
        api.deliver(trigger.id, trigger.secret, {"nmae": "typo", "extra": 1})
    assert misfit.value.status == 422
    codes = sorted((issue["code"], issue["port"]) for issue in misfit.value.details["issues"])
    assert codes == [("missing_input", "name"), ("unknown_input", "extra"), ("unknown_input", "nmae")]
    body = b"{not json"
    broken = httpx.post(f"{fleet[0].url}/v1/triggers/{trigger.id}", content=body,
                        headers={"X-Nodeloom-Signature": signature(trigger.secret, body)})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_json"


def test_an_input_map_reads_the_inputs_out_of_a_nested_body(api: Client) -> None:
    graph = api.create_graph(greeting_graph("greet-mapped"))
    trigger = api.create_trigger(graph.id, input_map={"name": "/product/title"})
    fired = api.deliver(trigger.id, trigger.secret, {"event": "created", "product": {"title": "Tea Tin"}})
    assert api.wait(fired.run_id, timeout=60).outputs == {"greeting": "Hello Tea Tin!"}
    with pytest.raises(ApiClientError) as missing:
        api.deliver(trigger.id, trigger.secret, {"product": {}})
    assert missing.value.status == 422
    assert [issue["code"] for issue in missing.value.details["issues"]] == ["missing_field"]
    with pytest.raises(ApiClientError) as wrong_map:
        api.create_trigger(graph.id, input_map={"title": "/product/title", "name": "no-slash"})
    assert sorted(issue["code"] for issue in wrong_map.value.details["issues"]) == ["invalid_pointer", "unknown_input"]


# -- schedules -------------------------------------------------------------------------


def test_a_bad_schedule_is_422_naming_what_is_wrong(api: Client) -> None:
    graph = api.create_graph(greeting_graph("greet-scheduled"))
    for cron, zone, code in (("61 * * * *", "UTC", "invalid_cron"), ("every morning", "UTC", "invalid_cron"),
                             ("0 9 * * *", "Mars/Olympus", "invalid_timezone")):
        with pytest.raises(ApiClientError) as bad:
            api.create_schedule(graph.id, cron, timezone=zone, inputs={"name": "x"})
        assert (bad.value.status, bad.value.code) == (422, code)
        assert bad.value.details["field"] == ("cron" if code == "invalid_cron" else "timezone")
    with pytest.raises(ApiClientError) as misfit:
        api.create_schedule(graph.id, "0 9 * * *", inputs={"nmae": "x"})
    assert sorted(issue["code"] for issue in misfit.value.details["issues"]) == ["missing_input", "unknown_input"]
    with pytest.raises(ApiClientError) as missing:
        api.create_schedule(uuid.uuid4().hex, "0 9 * * *")
    assert missing.value.status == 404
    paris = api.create_schedule(graph.id, "0 9 * * *", timezone="Europe/Paris", inputs={"name": "x"})
    assert time.gmtime(paris.next_fire_at).tm_hour in (7, 8)  # 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer


def test_with_two_servers_each_fire_starts_exactly_one_run(api: Client) -> None:
    graph = api.create_graph(greeting_graph("greet-every-second"))
    schedule = api.create_schedule(graph.id, "* * * * * *", inputs={"name": "tick"}, allow_overlap=True)
    time.sleep(5)
    api.set_schedule_enabled(schedule.id, False)
    time.sleep(0.5)  # a fire claimed just before the pause may still be submitting
    keys = _run_ids_by_key(api, graph.id)
    assert keys and all(count == 1 for count in keys.values()), keys
    fire_times = sorted(int(key.rsplit(":", 1)[1]) for key in keys)
    assert len(fire_times) >= 3
    assert fire_times == list(range(fire_times[0], fire_times[-1] + 1))  # no second skipped, none twice
    assert api.get_schedule(schedule.id).fires == len(fire_times)


def test_a_fire_while_the_last_run_is_in_flight_is_skipped(api: Client) -> None:
    graph = api.create_graph(sleeping_graph(2.5, "overlap"))
    schedule = api.create_schedule(graph.id, "* * * * * *")
    time.sleep(4.5)
    api.set_schedule_enabled(schedule.id, False)
    state = api.get_schedule(schedule.id)
    assert state.skipped_fires >= 1 and state.last_skip_reason == "overlap"
    runs = [api.wait(summary.id, timeout=60) for summary in api.list_runs(graph_id=graph.id)]
    spans = sorted((run.started_at or 0.0, run.finished_at or 0.0) for run in runs)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans


def test_missed_fires_after_downtime_follow_the_catchup_policy(tmp_path: Path) -> None:
    server = ApiServer(f"sqlite:///{tmp_path / 'nodeloom.db'}", tmp_path, env=cli_env(tmp_path, **FAST_SCHEDULER))
    server.start()
    key = _create_key_cli(server, "shop", "admin")
    with Client(server.url, api_key=key) as client:
        graph = client.create_graph(greeting_graph("greet-after-downtime"))
        latest = client.create_schedule(graph.id, "* * * * * */2", inputs={"name": "latest"}, catchup="latest")
        skip = client.create_schedule(graph.id, "* * * * * */2", inputs={"name": "skip"}, catchup="skip")
    server.stop()
    time.sleep(5)  # more than the 3 s grace: the fires due meanwhile are missed
    server.start()  # on another port
    try:
        with Client(server.url, api_key=key) as client:
            # the first look for due schedules after the start finds both overdue (slow on a busy machine)
            wait_until(lambda: client.get_schedule(latest.id).fires >= 1
                       and client.get_schedule(skip.id).last_skip_reason is not None, 60, "the missed fires")
            for schedule in (latest, skip):
                client.set_schedule_enabled(schedule.id, False)
            runs = [client.get_run(summary.id) for summary in client.list_runs(graph_id=graph.id, limit=500)]
            # a run started more than the grace after its fire time is the catch-up of missed fires
            caught_up = [run.inputs["name"] for run in runs
                         if run.created_at - float((run.idempotency_key or "").rsplit(":", 1)[1]) > 3]
            assert caught_up == ["latest"]
            assert client.get_schedule(skip.id).last_skip_reason == "missed"
            assert client.get_schedule(latest.id).skipped_fires == 0
    finally:
        server.stop()
