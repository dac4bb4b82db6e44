"""The agent console and the sandbox's customer page in a real browser (Debian's chromium, driven by selenium).

Two windows, as a person watching the sandbox would have them: the customer's page, talking to IM with the
customer's UserSig, and the agent's console in the Zendesk ticket sidebar, loaded with Zendesk's signed first load.
Screenshots of both go to the test's output folder (tmp_path)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bridge.console.auth import Session, issue, session_key
from bridge.sandbox.customer import create_app as create_customer
from bridge.sandbox.runner import install_zendesk_app
from bridge.sandbox.server import BackgroundServer
from tests.conftest import (
    CALLOUT_SECRET,
    IM_KEY,
    ZD_TOKEN,
    BridgeClient,
    BridgeFactory,
    ZendeskAdmin,
    helpdesk_settings,
    rsa_key_pair,
)
from tests.test_transcript_batches import written

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
TOKEN = "im-callback-token-for-browser-tests"
WAIT = 15.0

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and CHROMEDRIVER),
    reason="no Chromium on this machine: apt-get install -y chromium chromium-driver (.ci/run does)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1200, 800)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    return WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(condition, message=what)


@dataclass
class World:
    bridge: BridgeClient
    im: BackgroundServer
    zd: ZendeskAdmin
    customer: BackgroundServer
    host: BackgroundServer

    def page(self, html: str) -> str:
        """A page served from loopback (Chromium keeps pages of other origins, data: URLs too, off local servers)."""
        pages = self.host.app.state.pages
        pages.append(html)
        return f"{self.host.url}/{len(pages) - 1}"

    def assign(self, ticket_id: str, agent: int) -> None:
        self.zd.update(ticket_id, assignee_id=agent)
        assert self.bridge.post("/assignment", {"groupId": f"ZENDESK#{ticket_id}"}).status_code == 200

    def sidebar(self, agent: int, ticket_id: str | None = None) -> str:
        query = {"user_id": agent, **({"ticket_id": ticket_id} if ticket_id else {})}
        return f"{self.zd.server.url}/_emulator/apps/ticket_sidebar?{urllib.parse.urlencode(query)}"


@pytest.fixture
def world(
    bridge_factory: BridgeFactory, im_server: BackgroundServer, sf_server: BackgroundServer, zd_server: BackgroundServer
) -> Iterator[World]:
    """The sandbox's pieces: IM calling the bridge back, the Zendesk app installed, the customer's app."""
    # The app's key and installation first (the bridge is configured with them), then its URL (the bridge's).
    key, installation = install_zendesk_app(zd_server.url, ZD_TOKEN, "http://bridge.invalid")
    bridge = bridge_factory(
        **helpdesk_settings(sf_server.url, zd_server.url),
        im_callback_token=TOKEN,
        zendesk_app_public_key=key,
        zendesk_app_installation_id=installation,
        zendesk_app_sdk_url=zd_server.url + "/_emulator/apps/zaf_sdk.js",
        bridge_console_poll_seconds=600,  # live updates come from IM's callbacks here
        # Each message its own comment, so the ticket shows who said what: batching has its own tests.
        bridge_transcript_linger_seconds=0,
    )
    install_zendesk_app(zd_server.url, ZD_TOKEN, bridge.server.url)
    config = {"callback_url": bridge.server.url + "/callbacks/im", "callback_token": TOKEN}
    httpx.post(im_server.url + "/_emulator/config", json=config).raise_for_status()
    admin = ZendeskAdmin(zd_server)
    host = Starlette(routes=[Route("/{n:int}", lambda r: HTMLResponse(r.app.state.pages[r.path_params["n"]]))])
    host.state.pages = []
    with (
        BackgroundServer(create_customer(bridge.server.url, CALLOUT_SECRET, im_server.url)) as customer,
        BackgroundServer(host) as host_server,
    ):
        yield World(bridge, im_server, admin, customer, host_server)
    admin.http.close()


def customer_starts_chat(driver: Any, world: World, subject: str = "My printer is on fire") -> str:
    driver.get(world.customer.url + "/")
    driver.find_element(By.ID, "subject").clear()
    driver.find_element(By.ID, "subject").send_keys(subject)
    driver.find_element(By.CSS_SELECTOR, "#start button").click()
    return str(until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ticket-id"), "ticket"))


def customer_says(driver: Any, text: str) -> None:
    driver.find_element(By.ID, "text").send_keys(text)
    driver.find_element(By.ID, "send").click()
    until(driver, lambda d: text in d.find_element(By.ID, "messages").text, f"customer sees {text!r}")


def open_sidebar(driver: Any, world: World, agent: int, ticket_id: str) -> None:
    driver.get(world.sidebar(agent, ticket_id))
    driver.switch_to.frame("app")
    until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "console")


def console_texts(driver: Any) -> list[str]:
    return [el.text for el in driver.find_elements(By.CSS_SELECTOR, "#messages .message")]


def test_a_customer_and_an_agent_talk_and_the_ticket_records_it(browser: Any, world: World, tmp_path: Path) -> None:
    agent = world.zd.agents[0]
    customer_window = browser.current_window_handle
    browser.set_window_size(480, 760)
    ticket = customer_starts_chat(browser, world)
    customer_says(browser, "It is smoking, what do I do?")
    world.assign(ticket, agent)
    until(browser, lambda d: "joined the chat" in d.find_element(By.ID, "messages").text, "the agent joins")

    browser.switch_to.new_window("window")
    agent_window = browser.current_window_handle
    browser.set_window_size(1100, 760)
    open_sidebar(browser, world, agent, ticket)
    # The history, newest last, with the customer's name.
    assert any("It is smoking, what do I do?" in t for t in console_texts(browser))
    assert "Jane Customer" in browser.find_element(By.ID, "messages").text
    # 320 px: nothing overflows the sidebar, and the send box is usable.
    width = browser.execute_script("return [document.documentElement.clientWidth, document.body.scrollWidth]")
    assert width[0] == 320 and width[1] <= 320
    assert browser.find_element(By.ID, "text").is_enabled()

    # The agent answers: it reaches the customer through IM.
    browser.find_element(By.ID, "text").send_keys("Unplug it and step away, I am on it.")
    browser.find_element(By.ID, "send").click()
    until(browser, lambda d: any("Unplug it" in t for t in console_texts(d)), "the console shows the answer")
    browser.switch_to.window(customer_window)
    until(browser, lambda d: "Unplug it and step away" in d.find_element(By.ID, "messages").text, "customer reads")

    # The customer answers: it appears in the console without reloading it.
    customer_says(browser, "Done, thank you!")
    browser.save_screenshot(str(tmp_path / "customer-page.png"))
    browser.switch_to.window(agent_window)
    browser.switch_to.frame("app")
    reloads = browser.execute_script("return performance.getEntriesByType('navigation').length")
    until(browser, lambda d: any("Done, thank you!" in t for t in console_texts(d)), "the console shows the reply")
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == reloads
    browser.switch_to.default_content()

    # Every message lands in the ticket: the customer's as the requester's, the agent's as the agent's (in one comment
    # or in a batch of both, under each sender's label: tests/test_transcript_batches.py).
    def recorded() -> dict[str, Any]:
        return {line: author for author, line in written(world.zd, f"ZENDESK#{ticket}")}

    until(browser, lambda d: {"Done, thank you!", "Unplug it and step away, I am on it."} <= set(recorded()), "ticket")
    assert recorded()["Unplug it and step away, I am on it."] == agent
    assert recorded()["Done, thank you!"] == world.zd.ticket(ticket)["requester_id"]
    until(browser, lambda d: "Done, thank you!" in d.find_element(By.ID, "comments").text, "the ticket view")
    browser.save_screenshot(str(tmp_path / "console-zendesk-sidebar.png"))
    print(f"screenshots: {tmp_path}")


def session_for(world: World, ticket_id: str, agent: int) -> dict[str, Any]:
    """What the Salesforce package does: a signed call for the logged-in agent's session."""
    body = {"provider": "zendesk", "userId": str(agent), "ticketId": ticket_id}
    answer = world.bridge.post("/console/sessions", body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def framed(world: World, token: str) -> str:
    """A full-width page framing the console and handing it a session on request, as the Salesforce utility bar."""
    page = f"""<!doctype html><body style="margin:0"><iframe id="console" name="console"
      src="{world.bridge.server.url}/console/" style="border:0;width:100vw;height:100vh"></iframe>
      <script>window.addEventListener("message", function (e) {{
        if (e.data && e.data.type === "helpdesk-bridge:ready")
          e.source.postMessage({{type: "helpdesk-bridge:session", token: {json.dumps(token)}}}, "*");
      }});</script></body>"""
    return world.page(page)


def open_ticket(world: World, user: str, agent: int) -> tuple[str, str]:
    body = {"userId": user, "caseInfo": {"subject": "Refund", "name": "Kim"}}
    answer = world.bridge.post("/zendesk/createticket", body).json()
    world.assign(answer["ticketId"], agent)
    return str(answer["ticketId"]), str(answer["groupId"])


def test_the_console_in_a_full_tab_and_a_closed_ticket(browser: Any, world: World, tmp_path: Path) -> None:
    agent = world.zd.agents[0]
    ticket, group = open_ticket(world, "cust-full", agent)
    browser.get(framed(world, session_for(world, ticket, agent)["token"]))
    browser.switch_to.frame("console")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "console")
    width = browser.execute_script("return document.getElementById('console').getBoundingClientRect().width")
    assert width > 600  # it stretches in a full tab
    assert browser.find_element(By.ID, "text").is_enabled()
    world.zd.update(ticket, status="closed")
    assert world.bridge.post("/assignment", {"groupId": group}).status_code == 200
    # Without reloading: the stream reports the closed ticket and the send box is disabled.
    until(browser, lambda d: not d.find_element(By.ID, "text").is_enabled(), "input disabled")
    assert not browser.find_element(By.ID, "send").is_enabled()
    assert "closed" in browser.find_element(By.ID, "state").text.lower()
    assert "read-only" in browser.find_element(By.ID, "notice").text
    browser.save_screenshot(str(tmp_path / "console-closed.png"))


def test_a_session_cannot_read_another_tickets_group_from_the_page(browser: Any, world: World) -> None:
    agent = world.zd.agents[0]
    mine, _ = open_ticket(world, "cust-a", agent)
    _, other_group = open_ticket(world, "cust-b", world.zd.agents[1])
    token = session_for(world, mine, agent)["token"]
    browser.get(framed(world, token))
    browser.switch_to.frame("console")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "console")
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch("/console/api/groups/" + encodeURIComponent(arguments[0]) + "/messages",
              {headers: {Authorization: "Bearer " + arguments[1]}})
          .then(r => r.json().then(b => done([r.status, b])));""",
        other_group,
        token,
    )
    assert status[0] == 403 and status[1]["error"]["code"] == "other_group"


def test_an_expired_session_is_refused(browser: Any, world: World) -> None:
    agent = world.zd.agents[0]
    ticket, group = open_ticket(world, "cust-late", agent)
    account = session_for(world, ticket, agent)["agent"]
    expired, _ = issue(
        session_key(IM_KEY), Session("zendesk", str(agent), account, group, "", 0), 600, now=time.time() - 3600
    )
    browser.get(framed(world, expired))
    browser.switch_to.frame("console")
    until(browser, lambda d: "expired" in d.find_element(By.ID, "notice").text, "the page says the session expired")
    assert not browser.find_element(By.ID, "text").is_enabled()
    assert browser.find_elements(By.CSS_SELECTOR, "#messages .message") == []


def zendesk_post(world: World, token: str) -> str:
    """Zendesk's first load of the app, by hand: a form POST of `token` to the app's location, in a frame."""
    action = f"{world.bridge.server.url}/console/zendesk?origin=https://acme.zendesk.com&app_guid=1"
    page = f"""<!doctype html><body><iframe name="app" style="width:320px;height:400px"></iframe>
      <form id="f" method="post" target="app" action="{action}"><input type="hidden" name="token"
      value="{token}"></form><script>document.getElementById("f").submit();</script></body>"""
    return world.page(page)


def test_a_forged_or_tampered_zendesk_token_is_refused(browser: Any, world: World) -> None:
    agent = world.zd.agents[0]
    ticket, _ = open_ticket(world, "cust-z", agent)
    base = world.zd.server.url
    now = int(time.time())
    installation = world.bridge.settings.connectors["zendesk"].app_installation_id  # type: ignore[attr-defined]
    claims = {
        "iss": base.split("//")[1],
        "iat": now,
        "exp": now + 300,
        "aud": f"{base}/api/v2/apps/installations/{installation}.json",
        "sub": f"{base}/api/v2/users/{agent}.json",
    }
    stranger, _ = rsa_key_pair()
    forged = jwt.encode(claims, stranger, algorithm="RS256")
    genuine = browser_token(browser, world, agent, ticket)
    head, payload, signature = genuine.split(".")
    changed = json.loads(jwt.utils.base64url_decode(payload))
    changed["sub"] = f"{base}/api/v2/users/{world.zd.agents[1]}.json"
    tampered = ".".join([head, jwt.utils.base64url_encode(json.dumps(changed).encode()).decode(), signature])
    for token in (forged, tampered):
        browser.get(zendesk_post(world, token))
        browser.switch_to.frame("app")
        until(browser, lambda d: "unauthenticated" in d.find_element(By.TAG_NAME, "body").text, "refused")
        assert not browser.find_elements(By.ID, "console")
        browser.switch_to.default_content()


def browser_token(browser: Any, world: World, agent: int, ticket_id: str) -> str:
    """The token the emulated Zendesk signs for the agent's sidebar (read from its host page)."""
    browser.get(world.sidebar(agent, ticket_id))
    return str(browser.find_element(By.CSS_SELECTOR, "#signed input[name=token]").get_attribute("value"))
