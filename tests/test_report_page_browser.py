"""The report page in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromium-driver (nothing is downloaded), against a real ``rca serve``.

An alert reaches the webhook, the worker analyses the recorded incident, and the browser
opens the page as a Slack reader would (through the share link, no token): the root cause is
the API's, the charts are drawn, no Content-Security-Policy violation is reported, the page
fits a phone's width, and pressing 👍 stores the feedback row the dataset builder reads
(SQLite, and PostgreSQL when it runs here). Screenshots (desktop and phone width) are saved
with the test's files, and to ``$RCA_SCREENSHOT_DIR`` when set (how docs/img is made).

Without chromium, chromium-driver or selenium the tests skip, and fail under
``RCA_REQUIRE_INTEGRATION=1`` (``make test`` installs them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    Served,
    auth,
    notification,
    postgres_database,
    serve_env,
    snapshot_dir,
    unavailable,
    wait_for,
)

from agent.service.share import ShareSigner
from agent.store.db import database_url, make_engine
from agent.store.queries import analyses_with_feedback

pytestmark = pytest.mark.integration

SECRET = "browser-test-share-secret"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = ("chromedriver", "chromium-driver")
DESKTOP = (1280, 1900)
PHONE = (390, 844)


def _binary(names: tuple[str, ...], what: str) -> str:
    for name in names:
        if found := shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        ):
            return found
    unavailable(f"{what} is not installed (Debian: apt-get install chromium chromium-driver)")
    raise AssertionError("unreachable")


@contextmanager
def browser() -> Iterator[Any]:
    """Headless chromium under chromium-driver; selenium's own driver manager is not used."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = _binary(CHROMIUM, "chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=_binary(DRIVER, "chromium-driver"))
    )
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def _done(server: Served, analysis_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        url = f"{server.url}/v1/analyses/{analysis_id}"
        body: dict[str, Any] = httpx.get(url, headers=auth(READ_TOKEN), timeout=5).json()
        return body if body["status"] in ("done", "failed") else None

    result: dict[str, Any] = wait_for(check, 60, f"analysis {analysis_id}")
    assert result["status"] == "done", result
    return result


def _screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """The page's top as PNG: in the test's directory, and in $RCA_SCREENSHOT_DIR if set."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    if target := os.environ.get("RCA_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
    return path


def _check_page(driver: Any, root_service: str) -> None:
    from selenium.webdriver.common.by import By

    heading = driver.find_element(By.TAG_NAME, "h1").text
    assert heading.startswith(f"Root cause: {root_service}"), heading
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert charts, "no evidence chart on the page"
    for chart in charts:
        assert chart.size["width"] > 200 and chart.size["height"] > 50
    drawn = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart path.series, svg.chart rect.bar')]"
        ".map(e => e.getBBox()).filter(b => b.width > 10).length"
    )
    assert drawn >= len(charts)  # each chart drew its series or its bars
    # The stylesheet applied (its hash matches the policy) and nothing was blocked.
    border = driver.execute_script(
        "return getComputedStyle(document.querySelector('h2')).borderBottomStyle"
    )
    assert border == "solid"
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
    assert problems == []


def _phone(driver: Any) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True},
    )
    driver.refresh()
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"the page is {overflow} px wider than a phone"


def _run(tmp_path: Path, database: str | None, shots: bool) -> None:
    from selenium.webdriver.common.by import By

    snapshot_dir(tmp_path)
    env = serve_env(
        tmp_path,
        RCA_SERVICE__CHARTS="true",
        RCA_SERVICE__SHARE_SECRET=SECRET,
        RCA_SLACK__PUBLIC_URL="https://rca.example.com",
    )
    if database is not None:
        env["RCA_DATABASE_URL"] = database
    server = Served(env, tmp_path / "serve.log")
    try:
        accepted = httpx.post(
            f"{server.url}/v1/alertmanager",
            json=notification(),
            headers=auth(WEBHOOK_TOKEN),
            timeout=10,
        )
        assert accepted.status_code == 202, accepted.text
        analysis_id = accepted.json()["analysis_id"]
        root = _done(server, analysis_id)["analysis"]["root_cause"]["service"]
        token = ShareSigner(SECRET.encode()).sign(analysis_id, datetime.now(UTC) + timedelta(1))
        with browser() as driver:
            driver.get(f"{server.url}/analyses/{analysis_id}?share={token}")
            _check_page(driver, root)
            if shots:
                _screenshot(driver, tmp_path, "report-page-desktop.png")
            driver.find_element(By.CSS_SELECTOR, "button[value='correct']").click()
            wait_for(lambda: "rated=correct" in driver.current_url, 15, "the rating's redirect")
            status = driver.find_element(By.CSS_SELECTOR, "[role=status]").text
            assert "your rating “correct” was recorded" in status
            if shots:
                driver.get(f"{server.url}/analyses/{analysis_id}?share={token}")
                _phone(driver)
                driver.execute_script("document.getElementById('evidence').scrollIntoView()")
                _screenshot(driver, tmp_path, "report-page-phone.png")
    finally:
        server.stop()
    engine = make_engine(database or database_url(None, tmp_path / "data"))
    try:
        with engine.connect() as connection:
            from sqlalchemy.orm import Session

            rated = list(analyses_with_feedback(Session(connection)))
    finally:
        engine.dispose()
    assert [(a.id, f.verdict, f.actual_service, f.author) for a, f in rated] == [
        (analysis_id, "correct", root, "share:anonymous")
    ]


def test_browser_reads_and_rates_a_served_report_on_sqlite(tmp_path: Path) -> None:
    _run(tmp_path, None, shots=True)
    for name in ("report-page-desktop.png", "report-page-phone.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_browser_reads_and_rates_a_served_report_on_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        _run(tmp_path, url, shots=False)
