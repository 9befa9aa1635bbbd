"""The operator console in a real headless Chromium (selenium + Debian's chromedriver) against
a real worker, Kafka and Redis: search, expand a server message, reactivate with and without
the token, exports read back with openpyxl, a hostile diagnostic rendered inert.

One worker and one browser serve the whole module (their start-up is most of the cost); each
test uses addresses of its own, so the order of the tests does not matter. Screenshots go to
var/console/.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from openpyxl import load_workbook
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from pipeline.config import Settings
from pipeline.web import exports
from tests.integration.conftest import (
    ROOT,
    WorkerProcess,
    isolated_settings,
    read_topic,
    send,
    wait_for,
)
from tests.integration.test_api import call
from tests.integration.test_worker import attempt

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
TOKEN = "console-test-token"
SHOTS = ROOT / "var" / "console"
HOSTILE = (
    '550 5.1.1 <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> user unknown'
)
DNS = "550 5.1.2 Host or domain name not found. Name service error for name=nowhere.example"
POLICIES = """
[tenants.acme]
preset = "engagement"
[tenants.shop]
preset = "listrak"
"""


def ago(minutes: int) -> str:
    """An event time `minutes` before now (the delivered log keeps records for hours only)."""
    ts = datetime.now(UTC) - timedelta(minutes=minutes)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def feed() -> list[dict[str, Any]]:
    """The attempts the module's worker gets (see each test for what it looks at)."""
    ok = {"smtp_code": 250, "enhanced_code": "2.0.0", "diagnostic": "250 2.0.0 OK queued"}
    full = {"smtp_code": 452, "enhanced_code": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full"}
    dns = {"smtp_code": 550, "enhanced_code": "5.1.2", "diagnostic": DNS}
    return [
        attempt("jane@example.com", "delivered", ts=ago(50), **ok),
        attempt("jane@example.com", "deferred", ts=ago(40), campaign_id="c1", **full),
        attempt("jane@example.com", ts=ago(30), campaign_id="c2"),
        attempt("hostile@example.com", ts=ago(30), diagnostic=HOSTILE),
        attempt("bob@example.com", ts=ago(30)),
        attempt("carol@example.com", ts=ago(20), tenant="shop", list_id="news", **dns),
        *[
            attempt(
                "dave@example.com",
                "deferred",
                ts=ago(20 - n),
                tenant="shop",
                list_id="=SUM(1)",
                campaign_id=f"s{n}",
                **full,
            )
            for n in range(3)
        ],
    ]


@pytest.fixture(scope="module")
def console_worker(
    kafka_broker: str,
    redis_server: str,
    module_worker_factory: Callable[..., WorkerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> WorkerProcess:
    """One worker with a token and the policies above, fed with `feed()` and settled."""
    policies = tmp_path_factory.mktemp("policies") / "policies.toml"
    policies.write_text(POLICIES)
    settings = isolated_settings(kafka_broker, redis_server, app="console")
    env = {"BOUNCEGUARD_API_TOKEN": TOKEN, "BOUNCEGUARD_POLICY_FILE": str(policies)}
    worker = module_worker_factory(settings, **env)
    producer = KafkaProducer(bootstrap_servers=kafka_broker, acks="all")
    try:
        for event in feed():
            send(producer, settings.topics.attempts, event, key=event["recipient"])
    finally:
        producer.close(timeout=10)
    read_topic(settings.kafka, settings.topics.suppressions, 3)

    def settled() -> bool:
        _, dave = call(settings, "GET", "/v1/addresses/dave@example.com?tenant=shop&list=%3DSUM(1)")
        _, hist = call(settings, "GET", "/v1/suppressions?tenant=acme")
        return len(dave["bounce_log"]) == 3 and len(hist["items"]) == 3

    wait_for(settled, 30)
    return worker


@pytest.fixture(scope="module")
def console(console_worker: WorkerProcess) -> Settings:
    """The settings of the module's worker."""
    return console_worker.settings


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium driven by Debian's chromedriver; downloads go to a temp folder."""
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1400")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def url(settings: Settings, path: str) -> str:
    """The absolute URL of a console path on the module's worker."""
    return f"http://127.0.0.1:{settings.web_port}{path}"


def shot(browser: WebDriver, name: str) -> None:
    """Save a screenshot of the current page to var/console/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def until(browser: WebDriver, cond: Callable[[WebDriver], Any]) -> Any:
    """Wait (up to 20 s) for `cond` to hold in the browser; fail the test with the page's
    address and text otherwise."""
    try:
        # the page swaps its body in place (PAGE_JS): an element read during the swap is stale
        wait = WebDriverWait(browser, 20, 0.1, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(cond)
    except TimeoutException:
        body = browser.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"not met in the page {browser.current_url}:\n{body[:3000]}")


def open_address(browser: WebDriver, settings: Settings, address: str, tenant: str) -> None:
    """Search `address` of `tenant` with the form at /ui (redirected to /ui/) and wait for
    its page."""
    browser.get(url(settings, "/ui"))
    form = browser.find_element(By.ID, "search")
    form.find_element(By.NAME, "address").send_keys(address)
    tenant_box = form.find_element(By.NAME, "tenant")
    tenant_box.clear()
    tenant_box.send_keys(tenant)
    form.find_element(By.CSS_SELECTOR, "button").click()
    until(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == address.lower())


def test_search_answers_why_an_address_was_suppressed(
    console: Settings, browser: WebDriver
) -> None:
    open_address(browser, console, "JANE@example.com", "acme")
    scope = browser.find_element(By.ID, "scope-tenant")
    why = scope.find_element(By.CSS_SELECTOR, "p.bad").text
    assert "by rule immediate_hard" in why
    assert "count 1 of threshold 1" in why
    assert "tripped the rule" in scope.text
    counters = scope.text
    assert "consecutive_soft" in counters  # the soft-bounce rule with its threshold
    assert "10 (20 when engaged; contact is not engaged)" in counters
    log = browser.find_element(By.ID, "bounce-log").text
    assert "mailbox_full" in log
    assert "user_unknown" in log
    delivered = browser.find_element(By.ID, "delivered").text
    assert "250" in delivered  # the "250 ok" record, while it is kept
    shot(browser, "address")


def test_a_server_message_expands(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/addresses/jane@example.com?tenant=acme"))
    message = browser.find_element(By.CSS_SELECTOR, "#bounce-log details.message")
    pre = message.find_element(By.TAG_NAME, "pre")
    assert not pre.is_displayed()
    message.find_element(By.TAG_NAME, "summary").click()
    until(browser, lambda b: pre.is_displayed())
    assert "does not exist" in pre.text  # the newest entry: Gmail's 5.1.1 text
    shot(browser, "expanded")


def test_a_hostile_diagnostic_renders_as_text(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/addresses/hostile@example.com?tenant=acme"))
    for message in browser.find_elements(By.CSS_SELECTOR, "#bounce-log details.message"):
        message.find_element(By.TAG_NAME, "summary").click()
    texts = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "details.message pre")]
    assert HOSTILE in texts  # shown, character for character, as text
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    shot(browser, "hostile")


def test_reactivate_without_the_token_is_refused(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/addresses/bob@example.com?tenant=acme"))
    browser.find_element(By.CSS_SELECTOR, "form.reactivate button").click()
    result = until(browser, lambda b: b.find_element(By.ID, "result").text.startswith("Refused"))
    assert result
    assert "401 unauthorized" in browser.find_element(By.ID, "result").text
    browser.refresh()
    assert browser.find_element(By.CSS_SELECTOR, "#scope-tenant .state").text == "suppressed"


def test_reactivate_with_the_token_adds_the_address_back(
    console: Settings, browser: WebDriver
) -> None:
    browser.get(url(console, "/ui/addresses/bob@example.com?tenant=acme"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.reactivate button").click()
    until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#scope-tenant .state.ok"))
    assert browser.find_element(By.CSS_SELECTOR, "#scope-tenant .state.ok").text == "active"
    assert browser.find_elements(By.CSS_SELECTOR, "form.reactivate") == []
    events = [orjson.loads(v) for v in read_topic(console.kafka, console.topics.suppressions, 4)]
    assert [e["action"] for e in events if e["address"] == "bob@example.com"] == [
        "suppressed",
        "reactivated",
    ]
    shot(browser, "reactivated")


def download(browser: WebDriver, link_id: str, suffix: str) -> bytes:
    """Click the export link `link_id` and return the downloaded file's bytes."""
    folder: Path = browser.downloads  # type: ignore[attr-defined]
    for old in folder.glob(f"*{suffix}"):
        old.unlink()
    browser.find_element(By.ID, link_id).click()
    done = lambda: [p for p in folder.glob(f"*{suffix}") if p.stat().st_size]  # noqa: E731
    wait_for(lambda: bool(done()), 20, lambda: str(list(folder.iterdir())))
    return done()[0].read_bytes()


def test_exports_hold_the_same_rows_as_csv_and_xlsx(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/tenants/shop"))
    shot(browser, "tenant")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "carol@example.com" in text  # the sweep preview: bad_domain needs a count of 1
    csv_rows = list(csv.reader(io.StringIO(download(browser, "export-csv", ".csv").decode())))
    book = load_workbook(io.BytesIO(download(browser, "export-xlsx", ".xlsx")))
    xlsx_rows = [["" if v is None else str(v) for v in row] for row in book.active.values]
    assert csv_rows == xlsx_rows
    assert csv_rows[0] == [
        "address",
        "list_id",
        "latest_reason",
        "bounce_count",
        "latest_ts",
        "suppressed",
    ]
    by_address = {row[0]: row for row in csv_rows[1:]}
    assert sorted(by_address) == ["carol@example.com", "dave@example.com"]
    assert by_address["dave@example.com"][1:4] == ["'=SUM(1)", "mailbox_full", "3"]
    assert by_address["carol@example.com"][2:4] == ["bad_domain", "1"]


def test_tenant_history_filters_by_rule_and_reason(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/tenants/acme"))
    form = browser.find_element(By.ID, "filters")
    Select(form.find_element(By.NAME, "rule")).select_by_value("immediate_hard")
    Select(form.find_element(By.NAME, "reason")).select_by_value("user_unknown")
    form.find_element(By.CSS_SELECTOR, "button").click()
    until(browser, lambda b: "rule=immediate_hard" in b.current_url)
    history = browser.find_element(By.TAG_NAME, "main").text
    for address in ("jane@example.com", "hostile@example.com", "bob@example.com"):
        assert address in history
    assert "suppressed" in history
    shot(browser, "tenant-history")
    Select(browser.find_element(By.NAME, "rule")).select_by_value("consecutive_soft")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    until(
        browser,
        lambda b: "Suppressions over time: none." in b.find_element(By.TAG_NAME, "main").text,
    )


def test_off_loopback_pages_need_the_token_typed_in(
    kafka_broker: str,
    redis_server: str,
    worker_factory: Callable[..., WorkerProcess],
    producer: KafkaProducer,
    browser: WebDriver,
) -> None:
    """Bound to 127.0.0.2 (not the loopback address the read rule trusts, yet still local to
    this machine): the page answers 401 with a token field until the typed token unlocks it,
    and the unlocked page can reactivate without typing it again."""
    settings = isolated_settings(kafka_broker, redis_server, app="console", web_bind="127.0.0.2")
    env = {"BOUNCEGUARD_API_TOKEN": TOKEN, "BOUNCEGUARD_WEB_BIND": "127.0.0.2"}
    worker_factory(settings, **env)
    send(
        producer, settings.topics.attempts, attempt("locked@example.com"), key="locked@example.com"
    )
    read_topic(settings.kafka, settings.topics.suppressions, 1)
    browser.get(f"http://127.0.0.2:{settings.web_port}/ui/addresses/locked@example.com?tenant=acme")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Token needed"
    assert "locked@example.com" not in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "#unlock button").click()
    until(browser, lambda b: b.find_element(By.ID, "result").text == "Wrong token.")
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#unlock button").click()
    until(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == "locked@example.com")
    assert "immediate_hard" in browser.find_element(By.ID, "scope-tenant").text
    browser.find_element(By.CSS_SELECTOR, "form.reactivate button").click()
    until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#scope-tenant .state.ok"))
    assert browser.find_element(By.ID, "result").text == "Reactivated."
    browser.get(f"http://127.0.0.2:{settings.web_port}/ui/tenants/acme")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Token needed"
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#unlock button").click()
    until(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == "Tenant acme")
    rows = list(csv.reader(io.StringIO(download(browser, "export-csv", ".csv").decode())))
    assert rows == [list(exports.COLUMNS)]  # the reactivation reset the only bounce count


def test_a_list_scoped_address_page_links_its_lists(console: Settings, browser: WebDriver) -> None:
    open_address(browser, console, "carol@example.com", "shop")
    assert "shown: mail sent without a list" in browser.find_element(By.TAG_NAME, "main").text
    browser.find_element(By.LINK_TEXT, "news").click()
    until(browser, lambda b: "shown: list news" in b.find_element(By.TAG_NAME, "main").text)
    scope = browser.find_element(By.ID, "scope-list").text
    assert "bad_domain" in scope
    assert "bounce_cleanup count_threshold 1 1 for the latest reason (sweep)" in scope


def test_the_worker_log_names_no_address(console_worker: WorkerProcess, browser: WebDriver) -> None:
    """The console's pages, search and exports leave no address in the worker's log (faust's
    web server keeps no access log; the handlers log the tenant only)."""
    settings = console_worker.settings
    open_address(browser, settings, "jane@example.com", "acme")
    browser.get(url(settings, "/ui/tenants/shop"))
    download(browser, "export-csv", ".csv")
    log = console_worker.log.read_text(errors="replace")
    assert "export tenant=shop format=csv" in log  # the log is the one the handlers write
    for event in feed():
        assert event["recipient"] not in log, console_worker.tail()


def test_tenant_history_pages_one_event_at_a_time(console: Settings, browser: WebDriver) -> None:
    browser.get(url(console, "/ui/tenants/acme?rule=immediate_hard&limit=1"))
    seen = []
    while True:
        rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
        seen += [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows]
        following = browser.find_elements(By.ID, "next")
        if not following:
            break
        following[0].click()
        until(browser, staleness_of(following[0]))  # the next page has replaced this one
    # every suppression once, in history order; bob's reactivation is another rule
    assert sorted(seen) == ["bob@example.com", "hostile@example.com", "jane@example.com"]
