"""The live dashboard at ``GET /``: its route over real HTTP, and the page in a real headless
Chromium (Debian's ``chromium`` and ``chromedriver``, driven by selenium; nothing downloaded).

The browser tests wait on the page's DOM with ``WebDriverWait`` (bounded, never reached when
things work); they never sleep. They skip when no browser or driver is installed, and fail in
CI, where ``.ci/run`` installs both.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import stepwatch
from stepwatch import _dashboard
from stepwatch.http import ServerHandle, make_wsgi_app
from stepwatch.testing import Harness, capture
from tests.helpers import free_port
from tests.test_cli import stepwatch_cli
from tests.test_http import request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

WAIT = 30.0  # upper bound for every wait on the page; never reached when things work
TOKEN = "dashboard-t0ken-9f3c"
HOSTILE_ID = '<img src=x onerror="window.__pwned=1">'
HOSTILE_NAME = "<script>window.__pwned=2</script>"


# ------------------------------------------------------------------ the route, no browser
@pytest.fixture
def served() -> Iterator[tuple[Harness, ServerHandle]]:
    with capture() as sw:
        handle = sw.monitor.serve()
        try:
            yield sw, handle
        finally:
            handle.close()


@pytest.fixture
def secured() -> Iterator[tuple[Harness, ServerHandle]]:
    with capture() as sw:
        handle = sw.monitor.serve(token=TOKEN)
        try:
            yield sw, handle
        finally:
            handle.close()


def raw(
    handle: ServerHandle, path: str, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = handle.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_the_page_is_html_with_a_strict_content_security_policy(
    served: tuple[Harness, ServerHandle],
) -> None:
    status, headers, body = raw(served[1], "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert b'<script src="dashboard.js"' in body
    assert b"<script>" not in body and b"style=" not in body  # nothing inline to allow
    for path, content_type in (
        ("/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ):
        status, headers, _ = raw(served[1], path)
        assert (status, headers["content-type"]) == (200, content_type)
        assert headers["content-security-policy"] == _dashboard.CONTENT_SECURITY_POLICY


def test_the_page_uses_relative_urls_only_so_it_works_under_a_prefix() -> None:
    for route in ("/", "/dashboard.js", "/dashboard.css"):
        found = _dashboard.asset(route, token_required=False)
        assert found is not None
        text = found[1].decode()
        for absolute in ('src="/', 'href="/', 'fetch("/', "fetch('/", "fetch(`/", "url(/", "http"):
            assert absolute not in text, (route, absolute)


def test_with_a_token_the_page_loads_without_it_and_holds_no_data(
    secured: tuple[Harness, ServerHandle],
) -> None:
    _sw, handle = secured
    with stepwatch.execution("job", execution_id="secret-job-id"):
        status, _, page = raw(handle, "/")
        script = raw(handle, "/dashboard.js")
        assert status == 200 and script[0] == 200
        assert b'<meta name="stepwatch-auth" content="token">' in page
        assert b"secret-job-id" not in page + script[2]
        assert raw(handle, "/executions")[0] == 401
        assert raw(handle, "/group")[0] == 401
        assert raw(handle, "/executions", token=TOKEN)[0] == 200


def test_without_a_token_the_page_says_so(served: tuple[Harness, ServerHandle]) -> None:
    assert b'<meta name="stepwatch-auth" content="none">' in raw(served[1], "/")[2]


def test_executions_filter_pages_and_counts(served: tuple[Harness, ServerHandle]) -> None:
    _sw, handle = served
    for number in range(30):
        stepwatch.enqueue("batch", execution_id=f"q-{number:02d}")
    with stepwatch.execution("nightly", execution_id="run-1") as ex, ex.step("extract"):
        status, _, body = request(handle, "/executions?offset=0&limit=10&steps=false")
        assert status == 200
        assert (body["total"], body["matched"], body["offset"]) == (31, 31, 0)
        assert [row["execution_id"] for row in body["executions"]] == [  # running first
            "run-1",
            *(f"q-{n:02d}" for n in range(9)),
        ]
        assert "steps" not in body["executions"][0]
        body = request(handle, "/executions?offset=25&limit=10")[2]
        assert [row["execution_id"] for row in body["executions"]] == [
            f"q-{n:02d}" for n in range(24, 30)
        ]
        body = request(handle, "/executions?q=Q-1")[2]  # any case
        assert [row["execution_id"] for row in body["executions"]] == [
            f"q-{n:02d}" for n in range(10, 20)
        ]
        assert (body["matched"], body["total"]) == (10, 31)
        body = request(handle, "/executions?q=EXTRACT")[2]  # the current step too
        assert [row["execution_id"] for row in body["executions"]] == ["run-1"]
        body = request(handle, "/executions?state=executing")[2]
        assert [row["execution_id"] for row in body["executions"]] == ["run-1"]
        plain = request(handle, "/executions")[2]
        assert "total" not in plain and len(plain["executions"]) == 31
        assert request(handle, "/executions?offset=-1")[0] == 400


def test_group_route_outside_a_group_is_empty(served: tuple[Harness, ServerHandle]) -> None:
    assert request(served[1], "/group")[2] == {"group": False, "members": []}


# ------------------------------------------------------------------------ the browser
def _browser_missing() -> str | None:
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return f"{binary} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs the browser and the dev extra")
        pytest.skip(missing)
    # Given the driver's path, selenium skips Selenium Manager; offline mode makes sure
    # nothing is ever downloaded even so.
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "chromedriver")
    try:
        driver = webdriver.Chrome(options=options, service=service)
    finally:
        if offline is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = offline
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser, its logs drained, left on a blank page afterwards (streams closed)."""
    log_entries(browser, "browser")
    log_entries(browser, "performance")
    yield browser
    browser.get("about:blank")


def log_entries(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    """The browser's ``kind`` log since the last call (each entry is handed out once)."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]  # unannotated in selenium
    return entries


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any]) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition
    )


def connection_state(driver: WebDriver) -> str | None:
    value: str | None = driver.find_element("id", "connection").get_attribute("data-state")
    return value


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: connection_state(d) == "live")


def row(driver: WebDriver, execution_id: str) -> WebElement | None:
    for line in driver.find_elements("css selector", "#executions tbody tr"):
        if line.get_attribute("data-execution-id") == execution_id:
            return line
    return None


def shown_percent(driver: WebDriver, execution_id: str) -> float | None:
    line = row(driver, execution_id)
    if line is None:
        return None
    value = line.find_element("css selector", "[role=progressbar]").get_attribute("aria-valuenow")
    return None if value is None else float(value)


def current_step(driver: WebDriver, execution_id: str) -> str:
    line = row(driver, execution_id)
    return "" if line is None else str(line.find_element("css selector", "td.step").text)


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page asked for: the DevTools network log and the resource timings."""
    urls = [
        message["params"]["request"]["url"]
        for message in performance_messages(driver)
        if message["method"] == "Network.requestWillBeSent"
    ]
    urls.extend(
        driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat(performance.getEntriesByType('navigation').map(e => e.name))"
        )
    )
    return urls


_performance_log: list[dict[str, Any]] = []


def performance_messages(driver: WebDriver) -> list[dict[str, Any]]:
    """The DevTools log entries so far (the driver hands each one out once; kept here)."""
    _performance_log.extend(
        json.loads(entry["message"])["message"] for entry in log_entries(driver, "performance")
    )
    return _performance_log


@pytest.fixture(autouse=True)
def _fresh_performance_log() -> None:
    _performance_log.clear()


def severe_console_entries(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in log_entries(driver, "browser") if entry["level"] == "SEVERE"]


def test_the_page_loads_with_no_console_error_and_no_request_elsewhere(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    _sw, handle = served
    with stepwatch.execution("nightly", execution_id="n-1", total_steps=3) as ex:
        with ex.step("extract"):
            pass
        open_page(page, handle.url + "/")
        wait_for(page, lambda d: row(d, "n-1") is not None)
        wait_for(page, lambda d: d.find_elements("css selector", "#figures dd"))
        wait_for(page, lambda d: "health: healthy" in d.find_element("id", "health").text)
        wait_for(page, lambda d: d.find_elements("css selector", "#events li[data-seq]"))
        assert "not part of a process group" in page.find_element("id", "group-note").text
    assert severe_console_entries(page) == []
    urls = requested_urls(page)
    assert urls, "the DevTools log saw no request at all"
    elsewhere = [url for url in urls if not url.startswith(handle.url + "/")]
    assert elsewhere == []


def test_running_executions_show_the_monitors_percent_and_move_when_a_step_ends(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    sw, handle = served
    with stepwatch.execution("nightly", execution_id="n-2", total_steps=4) as ex:
        with ex.step("extract"):
            pass
        open_page(page, handle.url + "/")
        page.execute_script("window.__sameDocument = true")
        first = ex.progress().percent
        assert first is not None
        wait_for(page, lambda d: shown_percent(d, "n-2") == round(first, 1))
        line = row(page, "n-2")
        assert line is not None and f"{round(first)}%" in line.text
        with ex.step("transform") as step:
            step.progress(done=1, total=2)
            running = sw.monitor.progress("n-2")
            assert running is not None and running.percent is not None
            midway = round(running.percent, 1)
            wait_for(page, lambda d: shown_percent(d, "n-2") == midway)
            wait_for(page, lambda d: "transform" in current_step(d, "n-2"))
        after = sw.monitor.progress("n-2")
        assert after is not None and after.percent is not None and after.percent > first
        done = round(after.percent, 1)
        wait_for(page, lambda d: shown_percent(d, "n-2") == done)
        assert page.execute_script("return window.__sameDocument") is True  # no reload
    wait_for(page, lambda d: row(d, "n-2") is None)  # ended: no longer listed


def test_opening_an_execution_shows_its_steps_and_attempts(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    sw, handle = served
    with stepwatch.execution("deploy", execution_id="d-1", total_steps=3) as ex:
        with ex.step("build", step_type="cpu"):
            sw.clock.advance(2)
        with contextlib.suppress(RuntimeError), ex.step("upload"):
            raise RuntimeError("network")
        upload = stack_step(ex, "upload")
        open_page(page, handle.url + "/")
        wait_for(page, lambda d: row(d, "d-1") is not None)
        button = row(page, "d-1")
        assert button is not None
        button.find_element("css selector", "button").click()
        # One line per entry of ExecutionProgress.steps (each attempt of a retried step,
        # or one entry with its `attempts`): the page draws what the server says.
        steps = ex.progress().steps
        assert steps[0].name == "build" and steps[-1].attempt == 2
        wait_for(page, lambda d: len(timeline(d)) == len(steps))
        assert page.find_element("id", "detail-id").text == "d-1"
        items = timeline(page)
        assert [item.get_attribute("data-step") for item in items] == [s.name for s in steps]
        assert "success" in items[0].text and "2.0 s" in items[0].text
        for item, step in zip(items[1:], steps[1:], strict=True):
            assert f"{step.state}, attempt {step.attempt}" in item.text
        assert "running, attempt 2" in items[-1].text
        upload.__exit__(None, None, None)
        wait_for(page, lambda d: "success, attempt 2" in timeline(d)[-1].text)


def timeline(driver: WebDriver) -> list[WebElement]:
    items: list[WebElement] = driver.find_elements("css selector", "#timeline li[data-step]")
    return items


def stack_step(ex: stepwatch.Execution, name: str) -> Any:
    """Enter a step of ``ex`` and return its scope, to be ended later by the test."""
    scope = ex.step(name)
    scope.__enter__()
    return scope


def test_an_id_with_markup_is_shown_as_text_and_runs_nothing(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    _sw, handle = served
    with stepwatch.execution(HOSTILE_NAME, execution_id=HOSTILE_ID, total_steps=2) as ex:
        with ex.step("<b>step</b>"):
            pass
        open_page(page, handle.url + "/")
        wait_for(page, lambda d: row(d, HOSTILE_ID) is not None)
        line = row(page, HOSTILE_ID)
        assert line is not None
        cells = line.find_elements("css selector", "td")
        assert cells[0].text == HOSTILE_ID and cells[1].text == HOSTILE_NAME
        cells[0].find_element("css selector", "button").click()
        wait_for(page, lambda d: d.find_elements("css selector", "#timeline li[data-step]"))
        assert page.find_element("id", "detail-id").text == HOSTILE_ID
        assert "<b>step</b>" in page.find_element("id", "timeline").text
        wait_for(page, lambda d: HOSTILE_ID in d.find_element("id", "events").text)
        injected = page.execute_script(
            "return [window.__pwned, document.querySelectorAll('img, b, main script').length]"
        )
        assert injected == [None, 0]
    assert not [url for url in requested_urls(page) if url.endswith("/x")]  # no <img src=x>


def test_with_a_token_the_page_works_once_it_is_entered_and_no_url_carries_it(
    page: WebDriver, secured: tuple[Harness, ServerHandle]
) -> None:
    _sw, handle = secured
    with stepwatch.execution("nightly", execution_id="t-1", total_steps=2) as ex:
        with ex.step("extract"):
            pass
        page.get(handle.url + "/")
        wait_for(page, lambda d: d.find_element("id", "login").is_displayed())
        assert not page.find_element("id", "main").is_displayed()
        page.find_element("id", "token").send_keys("wrong-token")
        page.find_element("id", "login-submit").click()
        wait_for(page, lambda d: "refused" in d.find_element("id", "login-error").text)
        page.find_element("id", "token").send_keys(TOKEN)
        page.find_element("id", "login-submit").click()
        wait_for(page, lambda d: connection_state(d) == "live")
        wait_for(page, lambda d: row(d, "t-1") is not None)
        wait_for(page, lambda d: d.find_elements("css selector", "#figures dd"))
    urls = requested_urls(page)
    assert any(url.endswith("/events") for url in urls)
    assert [url for url in urls if TOKEN in url] == []
    sent = [
        message["params"]["request"]
        for message in performance_messages(page)
        if message["method"] == "Network.requestWillBeSent"
    ]
    with_token = {
        request["url"].removeprefix(handle.url)
        for request in sent
        if request["headers"].get("Authorization") == f"Bearer {TOKEN}"
    }
    assert {"/events", "/summary", "/healthz"} <= {url.split("?")[0] for url in with_token}


def test_with_2000_executions_rows_stay_bounded_and_a_filter_reaches_any_one(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    _sw, handle = served
    for number in range(2000):
        stepwatch.enqueue("batch", execution_id=f"job-{number:04d}")
    open_page(page, handle.url + "/")
    wait_for(page, lambda d: d.find_element("id", "count").text == "50 shown of 2000")
    assert len(page.find_elements("css selector", "#executions tbody tr")) == 50
    for wanted in ("job-0000", "job-1234", "job-1999"):
        box = page.find_element("id", "filter")
        box.clear()
        box.send_keys(wanted)

        def alone(driver: WebDriver, wanted: str = wanted) -> bool:
            return listed(driver) == [wanted]

        wait_for(page, alone)
        assert page.find_element("id", "count").text == "1 shown of 1 matching (2000 in all)"
    page.find_element("id", "filter").clear()
    page.find_element("id", "filter").send_keys("job-19")
    wait_for(page, lambda d: d.find_element("id", "count").text.startswith("50 shown of 100 "))
    page.find_element("id", "next").click()
    wait_for(
        page,
        lambda d: (
            (row(d, "job-1999") is not None)
            and len(d.find_elements("css selector", "#executions tbody tr")) == 50
        ),
    )


def listed(driver: WebDriver) -> list[str | None]:
    return [
        line.get_attribute("data-execution-id")
        for line in driver.find_elements("css selector", "#executions tbody tr")
    ]


def test_the_page_reconnects_its_stream_after_the_server_restarts(page: WebDriver) -> None:
    with capture() as first:
        handle = first.monitor.serve()
        port = int(handle.url.rsplit(":", 1)[1])
        try:
            open_page(page, handle.url + "/")
        finally:
            handle.close()
    # The Monitor is gone (its streams ended): the page notices and keeps trying.
    wait_for(page, lambda d: connection_state(d) == "retry")
    with capture() as second:
        handle = second.monitor.serve(port=port)
        try:
            wait_for(page, lambda d: connection_state(d) == "live")
            with stepwatch.execution("after", execution_id="after-restart"):
                wait_for(page, lambda d: "after-restart" in d.find_element("id", "events").text)
                wait_for(page, lambda d: row(d, "after-restart") is not None)
        finally:
            handle.close()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_page_works_behind_a_path_prefix(page: WebDriver, sw: Harness) -> None:
    app = make_wsgi_app(sw.monitor)

    def proxied(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/watch/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"outside the prefix"]
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/watch", path[len("/watch") :]
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, proxied, _ThreadingServer, _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with stepwatch.execution("nightly", execution_id="p-1"):
            open_page(page, base + "/watch/")
            wait_for(page, lambda d: row(d, "p-1") is not None)
            wait_for(page, lambda d: d.find_elements("css selector", "#figures dd"))
        urls = requested_urls(page)
        assert [url for url in urls if not url.startswith(base + "/watch/")] == []
        assert severe_console_entries(page) == []
    finally:
        page.get("about:blank")
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_top_shows_the_same_figures_as_the_page(
    page: WebDriver, served: tuple[Harness, ServerHandle]
) -> None:
    sw, handle = served
    for number, seconds in enumerate((0.25, 2.0, 3.0, 75.0)):
        with stepwatch.execution("nightly", execution_id=f"done-{number}"):
            sw.clock.advance(seconds)
    with contextlib.suppress(RuntimeError), stepwatch.execution("nightly", execution_id="bad"):
        raise RuntimeError("boom")
    stepwatch.enqueue("nightly", execution_id="waiting")
    stepwatch.enqueue("nightly", execution_id="later", countdown=600.0)  # scheduled, not queued
    open_page(page, handle.url + "/")
    wait_for(page, lambda d: len(d.find_elements("css selector", "#figures dd")) == 15)
    wait_for(page, lambda d: d.find_element("id", "count").text == "2 shown of 2")
    figures = [
        (term.text, value.text)
        for term, value in zip(
            page.find_elements("css selector", "#figures dt"),
            page.find_elements("css selector", "#figures dd"),
            strict=True,
        )
    ]
    result = stepwatch_cli("top", handle.url, "--once", env={"COLUMNS": "1000"})
    assert result.returncode == 0, result.stderr
    assert ("Ended", "5") in figures and ("Failure rate", "20.0%") in figures
    assert ("Duration p50", "2.0 s") in figures
    assert ("Queued", "1") in figures and ("Scheduled", "1") in figures
    for label, value in figures:
        assert f"{label}: {value}" in result.stdout, (label, value)
    assert "2 shown of 2" in result.stdout


def test_demo_serve_prints_the_pages_address() -> None:
    port = free_port()
    result = stepwatch_cli(
        "demo", "--executions", "2", "--speed", "0.05", "--serve", str(port), env={"COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert f"dashboard: http://127.0.0.1:{port}/ " in result.stdout


@pytest.fixture
def group(tmp_path: Path) -> Iterator[tuple[stepwatch.Monitor, ServerHandle]]:
    """A served Monitor of a process group whose other member (a second Monitor writing
    its own file) has one running and one pending execution."""
    other = stepwatch.Monitor(multiprocess_dir=tmp_path, publish_interval=600.0)
    viewer = stepwatch.Monitor(multiprocess_dir=tmp_path, publish_interval=600.0)
    handle = viewer.serve()
    try:
        other.install()
        stepwatch.enqueue("batch", execution_id="waiting")
        with stepwatch.execution("batch", execution_id="member-run"):
            assert other.group is not None and other.group.publish()
            yield viewer, handle
    finally:
        handle.close()
        other.shutdown()
        viewer.shutdown()


def test_group_route_lists_this_process_and_its_peers(
    group: tuple[stepwatch.Monitor, ServerHandle],
) -> None:
    _, handle = group
    status, _, body = request(handle, "/group")
    assert status == 200 and body["group"] is True
    own, peer = body["members"]
    assert (own["self"], own["pid"], own["running"], own["pending"]) == (True, os.getpid(), 0, 0)
    assert (peer["self"], peer["alive"], peer["running"], peer["pending"]) == (False, True, 1, 1)
    assert peer["alerts"] == 0 and peer["published_at"].endswith("Z")


def test_the_page_lists_the_process_groups_members(
    page: WebDriver, group: tuple[stepwatch.Monitor, ServerHandle]
) -> None:
    _, handle = group
    open_page(page, handle.url + "/")
    wait_for(page, lambda d: d.find_element("id", "group-note").text == "2 members, 2 alive.")
    cells = [
        [cell.text for cell in line.find_elements("css selector", "td")]
        for line in page.find_elements("css selector", "#members tbody tr")
    ]
    assert cells[0][:2] == [f"{os.getpid()} (this process)", "alive"]
    assert cells[1][1] == "alive" and cells[1][3:5] == ["1", "1"]
    wait_for(page, lambda d: row(d, "member-run") is not None and row(d, "waiting") is not None)
