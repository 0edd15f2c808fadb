"""The web console in Debian's Chromium (headless, driven by Playwright) against a real `nodeloom serve`.

The server runs on 127.0.0.1 with SQLite in a temporary folder; graphs are saved and keys made
the way a user would (the SDK, `nodeloom keys create`). Every test fails on any browser console
error, apart from the HTTP error statuses the test itself provokes (Chromium logs each as one).
Set `NODELOOM_CONSOLE_SCREENSHOTS=docs/console` to write the screenshots that docs/console.md shows.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from test_api_server import ApiServer, _create_key_cli

from nodeloom.api.client import Client

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (a dev dependency)")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`apt-get install chromium`)")

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MARKETING = json.loads((ROOT / "examples" / "marketing_video" / "graph.json").read_text())


def title_card_graph(name: str = "title-card") -> dict[str, Any]:
    """topic -> text.template -> image.title_card: a run of well under a second."""
    return {
        "name": name,
        "description": "A headline and a title card for a topic",
        "inputs": {"topic": {"type": "Text", "default": "tea", "description": "what the card is about"}},
        "nodes": {
            "line": {"type": "text.template",
                     "inputs": {"template": "All about {{ topic }}", "topic": {"input": "topic"}}},
            "card": {"type": "image.title_card",
                     "inputs": {"text": {"node": "line", "output": "text"}, "width": 320, "height": 180}},
        },
        "outputs": {"headline": {"node": "line", "output": "text"}, "card": {"node": "card", "output": "image"}},
    }


def link_count(graph: dict[str, Any]) -> int:
    """Node-to-node links, graph inputs feeding nodes, and graph outputs: every line the canvas draws."""
    linked = sum(1 for node in graph["nodes"].values() for value in node["inputs"].values()
                 if isinstance(value, dict) and set(value) in ({"node", "output"}, {"input"}))
    return linked + len(graph["outputs"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("console")
    with ApiServer(f"sqlite:///{home / 'nodeloom.db'}", home).running() as instance:
        yield instance


@pytest.fixture(scope="module")
def admin_key(server: ApiServer) -> str:
    return _create_key_cli(server, "acme", "admin")


@pytest.fixture(scope="module")
def api(server: ApiServer, admin_key: str) -> Iterator[Client]:
    with Client(server.url, api_key=admin_key) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # Debian's chromium, never a browser Playwright downloads
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


class ConsolePage:
    """One browser tab on the console, recording console errors; `allow_status` names HTTP errors a test provokes."""

    def __init__(self, browser: Any, url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.url = url
        self.errors: list[str] = []
        self.allowed: set[int] = set()
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def allow_status(self, status: int) -> None:
        self.allowed.add(status)

    def unexpected_errors(self) -> list[str]:
        provoked = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
        return [text for text in self.errors
                if not ((found := provoked.search(text)) and int(found.group(1)) in self.allowed)]

    def sign_in(self, key: str) -> None:
        self.page.goto(self.url + "/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("navigation", name="sections").wait_for()

    def open_graph(self, graph_id: str) -> None:
        self.page.goto(f"{self.url}/#/graphs/{graph_id}")
        self.page.locator(".react-flow__node").first.wait_for()

    def screenshot(self, name: str) -> None:
        folder = os.environ.get("NODELOOM_CONSOLE_SCREENSHOTS")
        if folder:
            path = Path(folder) if Path(folder).is_absolute() else ROOT / folder
            path.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(path / f"{name}.png"))

    def assert_controls_labelled(self) -> None:
        """Every button, link, field and socket on the screen has an accessible name."""
        unnamed = self.page.evaluate("""() => [...document.querySelectorAll(
            'button, a[href], input, select, textarea, .react-flow__handle')].filter((element) => {
              const labelled = element.getAttribute('aria-label') || element.getAttribute('title')
                || (element.labels && element.labels.length) || element.textContent.trim();
              return !labelled && element.offsetParent !== null;
            }).map((element) => element.outerHTML.slice(0, 120))""")
        assert unnamed == []


@pytest.fixture
def tab(browser: Any, server: ApiServer) -> Iterator[ConsolePage]:
    console = ConsolePage(browser, server.url, DESKTOP)
    try:
        yield console
        assert console.unexpected_errors() == []
    finally:
        console.context.close()


def test_a_wrong_key_shows_the_sign_in_error_and_the_key_field_is_reachable_by_keyboard(tab: ConsolePage) -> None:
    tab.allow_status(401)
    page = tab.page
    page.goto(tab.url + "/")
    # React renders the first screen after the page's load event; wait for it before pressing keys
    page.get_by_label("API key").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type("nl_not-a-real-key")
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Cannot sign in" in alert.inner_text()
    assert "not valid" in alert.inner_text()
    assert page.evaluate("sessionStorage.getItem('nodeloom.key')") is None
    tab.assert_controls_labelled()
    tab.screenshot("sign-in-error")


def test_graphs_list_searches_by_name_filters_by_tag_and_shows_the_project(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    api.create_graph(title_card_graph("spring-poster"), tags=["posters"])
    api.create_graph(title_card_graph("autumn-poster"), tags=["posters", "autumn"])
    api.create_graph(title_card_graph("tagline"), tags=["copy"])
    tab.sign_in(admin_key)
    page = tab.page
    assert "project acme" in page.get_by_label("project").inner_text()
    # the key is in this tab's session storage, never in the address
    assert page.evaluate("sessionStorage.getItem('nodeloom.key')") == admin_key
    assert admin_key not in page.url
    table = page.get_by_role("table", name="graphs")
    page.get_by_label("search graphs by name").fill("POSTER")
    page.wait_for_function("() => document.querySelectorAll('table tbody tr').length === 2")
    names = table.locator("tbody td:first-child a")
    assert set(names.all_inner_texts()) == {"spring-poster", "autumn-poster"}
    page.get_by_label("filter graphs by tag").fill("autumn")
    page.wait_for_function("() => document.querySelectorAll('table tbody tr').length === 1")
    assert table.locator("tbody td:first-child a").all_inner_texts() == ["autumn-poster"]
    page.get_by_label("search graphs by name").fill("")
    page.get_by_label("filter graphs by tag").fill("")
    page.wait_for_function("() => document.querySelectorAll('table tbody tr').length >= 3")
    tab.assert_controls_labelled()
    tab.screenshot("graphs")


@pytest.mark.slow
def test_marketing_graph_shown_edited_saved_run_and_its_video_plays(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    """The whole path on the example graph: every node and link drawn, a literal changed, a version
    saved, a run started from the form, every node turning done, the MP4 playing in the page."""
    saved = api.create_graph(MARKETING, tags=["marketing"])
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    nodes = page.locator(".react-flow__node")
    page.wait_for_function(f"() => document.querySelectorAll('.react-flow__edge').length === {link_count(MARKETING)}")
    # every node of the graph, plus the graph's inputs and outputs
    assert sorted(nodes.evaluate_all("nodes => nodes.map((node) => node.dataset.id)")) == sorted(
        [*MARKETING["nodes"], "__inputs__", "__outputs__"])
    tab.assert_controls_labelled()
    tab.screenshot("canvas")

    page.locator('.react-flow__node[data-id="video"]').click()
    inspector = page.get_by_role("region", name="inspector")
    assert "slideshow" in inspector.inner_text().lower()
    fps = page.get_by_label("fps value")
    assert fps.input_value() == "24"
    fps.fill("20")
    fps.press("Enter")
    page.get_by_role("button", name="Save version").click()
    assert page.get_by_role("status").inner_text() == "Saved version 2"
    assert api.get_graph(saved.id).graph["nodes"]["video"]["inputs"]["fps"] == 20
    tab.screenshot("inspector")

    page.get_by_role("button", name="Run…").click()
    form = page.get_by_role("form", name="run inputs")
    # the smallest run the graph allows: three scenes, one storyboard turn, no voice
    for name, value in (("scenes", "3"), ("refine_turns", "1"), ("narration", "off")):
        field = form.get_by_label(f"{name} input")
        field.fill(value)
        field.press("Tab")
    form.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"#/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.locator(".box[data-state]").first.wait_for()
    page.wait_for_function(
        "(ids) => ids.every((id) => document.querySelector(`.box[data-node='${id}']`)?.dataset.state === 'done')",
        arg=list(MARKETING["nodes"]), timeout=240_000)
    page.locator('[data-run-state="succeeded"]').wait_for()  # run.finished comes after the last node's event
    video = page.get_by_role("region", name="outputs").locator("video")
    duration = video.evaluate("""(video) => new Promise((resolve, reject) => {
        if (video.readyState >= 1) return resolve(video.duration);
        video.addEventListener('loadedmetadata', () => resolve(video.duration));
        video.addEventListener('error', () => reject(new Error(`video error ${video.error && video.error.code}`)));
    })""")
    assert duration > 0
    assert api.get_run(run_id).inputs["scenes"] == 3
    tab.screenshot("run-marketing")
    # the refine loop's turns and the LLM's tokens arrived as progress events: the node's streamed text
    page.locator('.react-flow__node[data-id="storyboard"]').click()
    assert "turn 1: score" in page.get_by_role("region", name="streamed text").inner_text()


def test_small_graph_runs_with_live_node_states_and_an_image_output_and_appears_in_history(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    saved = api.create_graph(title_card_graph("small-run"), tags=["small"])
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    # a node is selected from the keyboard: focus it, Enter
    page.locator('.react-flow__node[data-id="card"]').focus()
    page.keyboard.press("Enter")
    assert page.get_by_role("region", name="inspector").get_by_role("heading", level=3).inner_text() == "card"
    page.get_by_role("button", name="Run…").click()
    form = page.get_by_role("form", name="run inputs")
    topic = form.get_by_label("topic input")
    assert topic.get_attribute("placeholder") == "default: tea"
    topic.fill("oolong")
    topic.press("Tab")
    tab.assert_controls_labelled()
    form.get_by_role("button", name="Start run").click()
    page.wait_for_function("() => ['line', 'card'].every((id) => "
                           "document.querySelector(`.box[data-node='${id}']`)?.dataset.state === 'done')")
    outputs = page.get_by_role("region", name="outputs")
    image = outputs.get_by_role("img", name="card")
    image.wait_for()
    assert image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 320
    assert outputs.get_by_label("headline value").inner_text() == "All about oolong"
    tab.screenshot("run")

    page.get_by_role("link", name="Runs", exact=True).click()
    runs = page.get_by_role("table", name="runs")
    runs.locator("tbody tr").first.wait_for()
    assert "small-run" in runs.locator("tbody tr").first.inner_text()
    assert "succeeded" in runs.locator("tbody tr").first.inner_text()
    page.get_by_label("filter runs by state").select_option("failed")
    page.wait_for_function("() => document.querySelector('table tbody')?.innerText.includes('No runs')")
    tab.screenshot("runs")

    page.get_by_role("link", name="Catalog").click()
    page.get_by_label("search node types").fill("title card")
    page.get_by_role("button", name="image.title_card").click()
    details = page.get_by_role("region", name="inspector")
    assert "width" in details.inner_text() and "Image" in details.inner_text()
    tab.assert_controls_labelled()
    tab.screenshot("catalog")


def test_a_wrong_connection_is_refused_with_the_reason_and_undo_takes_back_an_added_node(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    saved = api.create_graph(title_card_graph("wiring"))
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    edges = page.locator(".react-flow__edge")
    before = edges.count()
    assert before == link_count(title_card_graph())

    page.get_by_role("button", name="Add node").click()
    page.get_by_label("search node types").fill("text.template")
    page.get_by_role("button", name="add text.template").click()
    page.locator('.react-flow__node[data-id="template"]').wait_for()
    page.get_by_role("button", name="Lay out").click()
    page.get_by_role("button", name="fit view").click()

    # drag the card's Image output onto the new template's Text input
    source = page.get_by_label("output image of card (Image)")
    target = page.get_by_label("input template of template (Text)")
    source.drag_to(target)
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "Refused: Image cannot feed Text"
    assert edges.count() == before
    tab.screenshot("refused")

    # the same refusal from the inspector's link menu (the keyboard's way to link)
    page.locator('.react-flow__node[data-id="template"]').click()
    page.get_by_label("link template from").select_option(label="card.image (Image)")
    assert alert.inner_text() == "Refused: Image cannot feed Text"
    # a compatible link is made
    page.get_by_label("link template from").select_option(label="line.text (Text)")
    page.wait_for_function(f"() => document.querySelectorAll('.react-flow__edge').length === {before + 1}")

    page.get_by_role("button", name="undo").click()
    page.wait_for_function(f"() => document.querySelectorAll('.react-flow__edge').length === {before}")
    page.keyboard.press("Control+z")  # the layout
    page.keyboard.press("Control+z")  # the added node
    page.locator('.react-flow__node[data-id="template"]').wait_for(state="detached")
    page.keyboard.press("Control+Shift+z")
    page.locator('.react-flow__node[data-id="template"]').wait_for()

    # a literal made a graph input: the value becomes its default, and a link is drawn to it
    count = edges.count()
    page.locator('.react-flow__node[data-id="card"]').click()
    page.get_by_role("button", name="Make width a graph input").click()
    page.wait_for_function(f"() => document.querySelectorAll('.react-flow__edge').length === {count + 1}")
    assert page.get_by_label("output width of __inputs__ (Int)").count() == 1


def test_server_validation_errors_are_shown_on_the_node_and_port_they_name(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    tab.allow_status(422)
    saved = api.create_graph(title_card_graph("unlinked"))
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    page.locator('.react-flow__node[data-id="card"]').click()
    page.get_by_label("link text from").select_option("")  # the card's required text, now unset
    page.get_by_role("button", name="Save version").click()
    page.get_by_role("alert").filter(has_text="The server refused this version").wait_for()
    card = page.locator('.box[data-node="card"]')
    # the canvas marks the port once the refused save's errors reach it: wait for it, as a user sees it appear
    playwright_api.expect(card.locator(".port-invalid .port-name")).to_have_text("text")
    field = page.get_by_role("region", name="inspector").locator(".field-invalid")
    playwright_api.expect(field).to_contain_text("required")
    assert "text" in field.inner_text() and "required" in field.inner_text()
    assert api.get_graph(saved.id).version == 1
    tab.screenshot("validation")


@pytest.mark.slow
def test_a_workflow_drafted_from_a_sentence_opens_on_the_canvas(tab: ConsolePage, api: Client, admin_key: str) -> None:
    tab.sign_in(admin_key)
    page = tab.page
    page.get_by_role("link", name="Describe a workflow").first.click()
    page.get_by_label("What should the workflow do?").fill("Write a short tagline for a product")
    page.get_by_label("Repair rounds").select_option("0")  # one LLM call: the draft takes 10-60 s on 2 cores
    tab.screenshot("draft")
    page.get_by_role("button", name="Draft the graph").click()
    page.wait_for_url(re.compile(r"#/graphs/[0-9a-f]+$"), timeout=240_000)
    graph_id = page.url.rsplit("/", 1)[1]
    page.locator(".react-flow__node").first.wait_for()
    drafted = api.get_graph(graph_id)
    assert drafted.tags == ["drafted"]
    shown = page.locator(".react-flow__node").evaluate_all("nodes => nodes.map((node) => node.dataset.id)")
    assert set(drafted.graph["nodes"]) <= set(shown)
    tab.screenshot("drafted")


def test_phone_width_shows_the_graph_read_only(browser: Any, server: ApiServer, api: Client, admin_key: str) -> None:
    saved = api.create_graph(title_card_graph("on-a-phone"))
    phone = ConsolePage(browser, server.url, PHONE)
    try:
        phone.sign_in(admin_key)
        phone.open_graph(saved.id)
        page = phone.page
        assert page.locator(".react-flow__node").count() == 4
        assert page.get_by_role("button", name="Save version").count() == 0
        assert page.get_by_role("button", name="Add node").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.locator('.react-flow__node[data-id="card"]').click()
        assert page.get_by_label("width value").get_attribute("readonly") is not None
        phone.assert_controls_labelled()
        phone.screenshot("phone")
        assert phone.unexpected_errors() == []
    finally:
        phone.context.close()


def review_graph(name: str = "review") -> dict[str, Any]:
    """item -> line -> control.approve -> final: a run that waits for a person at `approve`."""
    return {
        "name": name,
        "inputs": {"item": {"type": "Text", "default": "tea", "description": "what to sell"}},
        "nodes": {
            "line": {"type": "text.template", "inputs": {"template": "Buy {{ item }} now", "item": {"input": "item"}}},
            "approve": {"type": "control.approve",
                        "inputs": {"value": {"node": "line", "output": "text"}, "message": "Check the wording"}},
            "final": {"type": "text.template",
                      "inputs": {"template": "{{ t }}!", "t": {"node": "approve", "output": "value"}}},
        },
        "outputs": {"text": {"node": "final", "output": "text"}},
    }


def wait_for_node_states(page: Any, states: dict[str, str]) -> None:
    page.wait_for_function(
        "(states) => Object.entries(states).every(([id, state]) => "
        "document.querySelector(`.box[data-node='${id}']`)?.dataset.state === state)", arg=states)


def test_a_waiting_run_is_approved_edited_or_rejected_in_the_run_view_and_follows_to_the_end(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    saved = api.create_graph(review_graph())
    tab.sign_in(admin_key)
    page = tab.page
    # the run is started from the form and waits at the approval: the node in its own colour, what to review shown
    tab.open_graph(saved.id)
    page.get_by_role("button", name="Run…").click()
    page.get_by_role("form", name="run inputs").get_by_role("button", name="Start run").click()
    page.locator('[data-run-state="waiting"]').wait_for()
    wait_for_node_states(page, {"line": "done", "approve": "waiting"})
    box = page.locator('.box[data-node="approve"]')
    assert box.evaluate("(box) => getComputedStyle(box).borderTopColor") == "rgb(123, 63, 181)"
    panel = page.get_by_role("region", name="approval of approve")
    assert "Check the wording" in panel.inner_text()
    assert panel.get_by_label("approve review").inner_text() == "Buy tea now"
    tab.assert_controls_labelled()
    tab.screenshot("approval")

    # approve an edited value, from the keyboard: the run goes on and the view follows it to the end
    edited = panel.get_by_label("Or approve this edited text")
    edited.fill("Buy green tea now")
    edited.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Approve edited value"
    page.keyboard.press("Enter")
    page.locator('[data-run-state="succeeded"]').wait_for()
    wait_for_node_states(page, {"approve": "done", "final": "done"})
    assert page.get_by_role("region", name="outputs").get_by_label("text value").inner_text() == "Buy green tea now!"
    run_id = page.url.rsplit("/", 1)[1]
    decided = api.get_run(run_id).nodes["approve"].approval
    assert decided is not None
    assert (decided.action, decided.edited, decided.value) == ("approve", True, "Buy green tea now")

    # the runs list filters the waiting runs; a reason rejects one, and the run fails with it
    waiting = api.submit(graph_id=saved.id, inputs={"item": "coffee"}).id
    assert api.wait(waiting, timeout=60).status.value == "waiting"
    page.goto(f"{tab.url}/#/runs?status=waiting")
    rows = page.get_by_role("table", name="runs").locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1 and "waiting" in rows.first.inner_text()
    assert page.get_by_label("filter runs by state").input_value() == "waiting"
    rows.first.get_by_role("link").click()
    panel.wait_for()
    assert panel.get_by_label("approve review").inner_text() == "Buy coffee now"
    reason = panel.get_by_label("Or reject it, saying why")
    reason.fill("coffee is not on sale")
    reason.press("Enter")
    page.locator('[data-run-state="failed"]').wait_for()
    wait_for_node_states(page, {"approve": "failed", "final": "skipped"})
    assert "coffee is not on sale" in page.locator('.box[data-node="approve"] .box-error').inner_text()
    assert panel.count() == 0

    # approved as it is
    plain = api.submit(graph_id=saved.id, inputs={"item": "milk"}).id
    assert api.wait(plain, timeout=60).status.value == "waiting"
    page.goto(f"{tab.url}/#/runs/{plain}")
    panel.get_by_role("button", name="Approve", exact=True).click()
    page.locator('[data-run-state="succeeded"]').wait_for()
    assert page.get_by_role("region", name="outputs").get_by_label("text value").inner_text() == "Buy milk now!"


def test_an_image_under_review_is_shown_in_the_approval_panel_and_approved(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    graph = {
        "name": "review-card",
        "nodes": {
            "card": {"type": "image.title_card", "inputs": {"text": "Loom Lamp", "width": 320, "height": 180}},
            "approve": {"type": "control.approve",
                        "inputs": {"value": {"node": "card", "output": "image"}, "message": "Is the card right?"}},
        },
        "outputs": {"card": {"node": "approve", "output": "value"}},
    }
    run_id = api.submit(graph_id=api.create_graph(graph).id).id
    assert api.wait(run_id, timeout=60).status.value == "waiting"
    tab.sign_in(admin_key)
    page = tab.page
    page.goto(f"{tab.url}/#/runs/{run_id}")
    wait_for_node_states(page, {"card": "done", "approve": "waiting"})
    panel = page.get_by_role("region", name="approval of approve")
    assert "Is the card right?" in panel.inner_text()
    # the image under review, fetched with the key before the decision, drawn as the outputs are
    image = panel.get_by_role("img", name="approve review")
    image.wait_for()
    assert image.evaluate("(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [320, 180]
    assert "image/png" in panel.inner_text()
    assert panel.get_by_label("Or approve this edited text").count() == 0  # an artifact is approved as it is
    tab.assert_controls_labelled()
    tab.screenshot("approval-artifact")

    panel.get_by_role("button", name="Approve", exact=True).click()
    page.locator('[data-run-state="succeeded"]').wait_for()
    wait_for_node_states(page, {"approve": "done"})
    assert panel.count() == 0
    output = page.get_by_role("region", name="outputs").get_by_role("img", name="card")
    assert output.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 320


def lookup_graph(path: str) -> dict[str, Any]:
    """topic -> json.object -> json.extract(path): fails when `path` is not `topic`."""
    return {
        "name": "lookup",
        "inputs": {"topic": {"type": "Text", "default": "tea"}},
        "nodes": {
            "info": {"type": "json.object", "inputs": {"topic": {"input": "topic"}}},
            "pick": {"type": "json.extract", "inputs": {"data": {"node": "info", "output": "data"}, "path": path}},
        },
        "outputs": {"about": {"node": "pick", "output": "value"}},
    }


def test_a_failed_run_is_retried_from_the_failed_node_with_the_fixed_version(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    saved = api.create_graph(lookup_graph("subject"))
    failed = api.wait(api.submit(graph_id=saved.id).id, timeout=60)
    assert failed.status.value == "failed"
    api.update_graph(saved.id, lookup_graph("topic"))  # the fix, saved as version 2
    tab.sign_in(admin_key)
    page = tab.page
    page.goto(f"{tab.url}/#/runs/{failed.id}")
    page.locator('[data-run-state="failed"]').wait_for()
    version = page.get_by_label("graph version to retry")
    version.select_option(label="v2 (newest)")
    page.get_by_role("button", name="Retry", exact=True).click()
    page.wait_for_url(re.compile(r"#/runs/(?!" + failed.id + r")[0-9a-f]+$"))
    plan = page.get_by_role("status", name="retry plan")
    assert plan.locator("[data-rerun]").get_attribute("data-rerun") == "pick"
    assert plan.locator("[data-reused]").get_attribute("data-reused") == "info"
    assert "pick (failed before)" in plan.inner_text()
    page.locator('[data-run-state="succeeded"]').wait_for()
    wait_for_node_states(page, {"info": "cached", "pick": "done"})
    assert page.get_by_role("region", name="outputs").get_by_label("about value").inner_text() == "tea"
    retried = api.get_run(page.url.rsplit("/", 1)[1])
    assert retried.graph_version == 2 and retried.nodes["info"].state == "cached"
    tab.assert_controls_labelled()
    tab.screenshot("retry")


def test_change_this_graph_drafts_an_edit_shows_its_diff_and_opens_it_unsaved(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    saved = api.create_graph(title_card_graph("to-change"))
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    page.get_by_role("button", name="Change…").click()
    page.get_by_label("What should change?").fill("make it square")
    page.get_by_role("button", name="Draft the change").click()
    changes = page.get_by_role("list", name="changes")
    changes.wait_for(timeout=120_000)  # the drafter's first request loads its recipe index
    assert sorted(changes.locator("li").all_inner_texts()) == [
        "~ card.height: 180 -> 1080", "~ card.width: 320 -> 1080"]
    card = page.locator('.box[data-node="card"]')
    assert "= 1080" in card.inner_text()
    assert "(edited)" in page.get_by_role("heading", level=1).inner_text()
    assert api.get_graph(saved.id).version == 1  # unsaved until Save version
    tab.assert_controls_labelled()
    tab.screenshot("change")
    page.get_by_role("button", name="Save version").click()
    assert page.get_by_role("status").inner_text() == "Saved version 2"
    assert api.get_graph(saved.id).graph["nodes"]["card"]["inputs"]["width"] == 1080


def test_an_image_input_is_uploaded_from_the_run_form_and_the_run_uses_it(
    tab: ConsolePage, api: Client, admin_key: str,
) -> None:
    graph = {
        "name": "resize-a-photo",
        "inputs": {"photo": {"type": "Image", "description": "the picture to resize"}},
        "nodes": {"small": {"type": "image.resize",
                            "inputs": {"image": {"input": "photo"}, "width": 48, "height": 24, "mode": "stretch"}}},
        "outputs": {"small": {"node": "small", "output": "image"}},
    }
    saved = api.create_graph(graph)
    buffer = io.BytesIO()
    PILImage.new("RGB", (200, 100), "#cc3366").save(buffer, format="PNG")
    tab.sign_in(admin_key)
    page = tab.page
    tab.open_graph(saved.id)
    page.get_by_role("button", name="Run…").click()
    form = page.get_by_role("form", name="run inputs")
    form.get_by_label("photo input").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": buffer.getvalue()}])
    form.get_by_role("status").filter(has_text="Uploaded photo.png").wait_for()
    assert f"{len(buffer.getvalue())} bytes" in form.get_by_role("status").inner_text()
    tab.assert_controls_labelled()
    tab.screenshot("upload")
    form.get_by_role("button", name="Start run").click()
    page.locator('[data-run-state="succeeded"]').wait_for()
    image = page.get_by_role("region", name="outputs").get_by_role("img", name="small")
    assert image.evaluate("(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [48, 24]
    run = api.get_run(page.url.rsplit("/", 1)[1])
    assert run.inputs["photo"]["media_type"] == "image/png" and run.inputs["photo"]["size"] == len(buffer.getvalue())
