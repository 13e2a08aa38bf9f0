"""The executive view on a real store: Streamlit's AppTest for the page's logic, a real
Prometheus for the live numbers, and headless Chromium for the page a person sees."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from app.config import LiveQuery, PageConfig
from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import LedgerRow
from kpi_mapping.config import KpiConfig
from kpi_mapping.cost_report import report as cost_report
from kpi_mapping.periods import parse_period
from kpi_mapping.report import build, show
from llmkpi import processes
from llmkpi.demo_data import make
from specs.slo import slo
from tests.integration.helpers import prometheus
from tests.integration.store_fixtures import POSTGRES, write_pd_fleet

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
SLOS = (slo("availability", "availability", 0.999),
        slo("ttft", "ttft", 0.99, 0.5), slo("itl", "itl", 0.99, 0.05))
OCTOBER = parse_period("month", "2026-10")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A three-month demo company ending October 2026, rolled up as `llmkpi app` leaves it."""
    folder = tmp_path_factory.mktemp("app-store")
    path = str(folder / "llmkpi.sqlite")
    store = Store.open(path)
    try:
        load(store, make(folder / "company", 3, 5, date(2026, 10, 1), base_per_day=40,
                         raw_days=None),
             say=lambda _line: None)
        build(store, OCTOBER, KpiConfig())  # refreshes the roll-up
    finally:
        store.close()
    return path


def script(config_json: str) -> None:
    from app.config import PageConfig
    from app.page import main

    main(PageConfig.from_json(config_json))


def page(config: PageConfig) -> AppTest:
    at = AppTest.from_function(script, args=(config.to_json(),), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return str(next(m.value for m in at.metric if m.label == label))


def texts(at: AppTest) -> str:
    parts: list[Any] = [*at.info, *at.caption, *at.markdown, *at.subheader, *at.error]
    return "\n".join(str(p.value) for p in parts)


def test_every_section_renders_the_stores_numbers(database: str) -> None:
    at = page(PageConfig(database, slos=SLOS))
    headers = [h.value for h in at.subheader]
    assert [h.split(" · ")[0] for h in headers] == [
        "North star", "Scorecard", "Cost per token", "Serving health"]
    assert "2026-10" in headers[0]  # the newest complete month is the default
    store = Store.open(database, migrate=False)
    try:
        expected = build(store, OCTOBER, KpiConfig())
        cost = cost_report(store, OCTOBER)
    finally:
        store.close()
    star = expected.row(19)
    assert metric(at, "Revenue per employee") == show(star.ceo.value, "dollars_per_year")
    assert metric(at, "Engineer Productivity Index") == show(star.cto.value, "dollars_per_year")
    assert metric(at, "GPU bill") == f"${cost['gpu_bill']:,.2f}"
    assert metric(at, "Idle cost") == f"${cost['idle']:,.2f}"
    expanders = [e.label for e in at.expander]
    assert expanders == [f"{i} · formula, inputs and data" for i in range(1, 20)]
    body = texts(at)
    for row in expected.rows:
        assert row.mapping.ceo_kpi in body and row.mapping.cto_metric in body
        if row.cto.value is not None:
            assert f"**{show(row.cto.value, row.mapping.cto_unit)}**" in body
    progress = [p.proto.text for p in at.get("progress")]  # type: ignore[attr-defined]
    assert [t.split(":")[0] for t in progress] == [s.name for s in SLOS]
    assert all("error budget remaining" in t for t in progress)
    assert int(metric(at, "Requests").replace(",", "")) == sum(
        t["requests"] for t in cost["tenants"]) + cost["unpriced_requests"]
    # the model table: every model's input tokens cost something (prefill is not free)
    (models,) = [d.value for d in at.dataframe if "$/M input" in d.value.columns]
    assert len(models) == len(cost["models"]) and (models["$/M input"] > 0).all()
    assert (models["$/M output"] > models["$/M input"]).all()


def test_tenant_model_and_period_filters_change_the_numbers(database: str) -> None:
    at = page(PageConfig(database, slos=SLOS))
    everyone_ttft, everyone_requests = metric(at, "TTFT p95"), metric(at, "Requests")
    store = Store.open(database, migrate=False)
    try:
        cost = cost_report(store, OCTOBER)
        tenant = max(cost["tenants"], key=lambda t: t["cents"])
        with store.engine.connect() as conn:
            tenant_requests = conn.execute(select(func.count()).where(
                LedgerRow.tenant == tenant["tenant"],  # type: ignore[arg-type]
                LedgerRow.arrival >= OCTOBER.start,  # type: ignore[arg-type,operator]
                LedgerRow.arrival < OCTOBER.end)).scalar()  # type: ignore[arg-type,operator]
    finally:
        store.close()
    at.multiselect(key="tenants").set_value([tenant["tenant"]]).run()
    assert not at.exception
    # the selection's fully loaded cost is the report's row for that tenant, to the cent
    assert metric(at, "Spent by the selection") == f"${tenant['loaded_cents'] / 100:,.2f}"
    assert metric(at, "Requests") == f"{tenant_requests:,}" != everyone_requests
    assert metric(at, "TTFT p95") != everyone_ttft or tenant_requests == 0

    at.multiselect(key="tenants").set_value([])
    model = cost["models"][0]["model"]
    at.multiselect(key="models").set_value([model]).run()
    assert metric(at, "Spent by the selection") == \
        f"${cost['models'][0]['loaded_cents'] / 100:,.2f}"

    at.segmented_control(key="period_kind").set_value("quarter").run()
    assert not at.exception
    assert "2026-Q3" in at.subheader[0].value  # Q4 is still running in the data
    store = Store.open(database, migrate=False)
    try:
        quarter = build(store, parse_period("quarter", "2026-Q3"), KpiConfig()).row(19)
    finally:
        store.close()
    assert metric(at, "Revenue per employee") == show(quarter.ceo.value, "dollars_per_year")


def test_the_page_reads_a_postgresql_store(tmp_path: Path) -> None:
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    try:
        store = Store.open(url)
        try:
            load(store, make(tmp_path / "company", 2, 3, date(2026, 10, 1), base_per_day=20,
                         raw_days=None),
                 say=lambda _line: None)
            expected = build(store, OCTOBER, KpiConfig()).row(19)
        finally:
            store.close()
        at = page(PageConfig(url, slos=SLOS))
        assert not at.error and len(at.expander) == 19
        assert metric(at, "Revenue per employee") == show(expected.ceo.value,
                                                          "dollars_per_year")
        assert int(metric(at, "Requests").replace(",", "")) > 0
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_empty_store_names_the_imports_that_fill_each_panel(tmp_path: Path) -> None:
    empty = str(tmp_path / "empty.sqlite")
    Store.open(empty).close()
    at = page(PageConfig(empty, slos=SLOS))
    body = texts(at)
    assert "llmkpi import gpus FILE" in body  # cost per token
    assert "the sidecar's --ledger" in body  # serving health
    assert "missing input: people (llmkpi import people)" in body  # the north star
    assert "(llmkpi import finance)" in body  # CEO KPIs
    assert len(at.expander) == 19 and not at.error


def test_the_bill_by_role_on_a_pd_fleet(tmp_path: Path) -> None:
    """tests/unit/test_cost_roles.py's two P/D requests, stored and rolled up: the page's
    "By role" table shows its hand-computed figures."""
    path = str(tmp_path / "pd.sqlite")
    store = Store.open(path)
    try:
        write_pd_fleet(store)
    finally:
        store.close()
    at = page(PageConfig(path, slos=SLOS))
    which = at.selectbox(key="period")
    at = which.select_index(next(i for i, label in enumerate(which.options)
                                 if label.startswith("2026-10"))).run()
    assert "2026-10" in at.subheader[0].value
    (roles,) = [d.value for d in at.dataframe if "$/M of its work" in d.value.columns]
    table = roles.set_index("role")
    # each pod's bill $36, the prefill pod's per prompt token prefilled ($36 / 1,500 × 1e6),
    # the decode pod's per output token ($36 / 300 × 1e6); decode requests queued
    # (0.5 + 0.2) / 2 s, their KV wait included
    assert table.loc["prefill", ["bill", "tokens", "$/M of its work"]].tolist() == [
        36.0, 1500, 24_000.0]
    assert table.loc["decode", ["bill", "tokens", "$/M of its work"]].tolist() == [
        36.0, 300, 120_000.0]
    assert round(table.loc["decode", "queue per request"], 6) == 0.35
    # two requests, not four: the prefill pod's rows are its work, not clients' requests
    assert metric(at, "Requests") == "2"


def test_a_missing_store_is_one_clear_error(tmp_path: Path) -> None:
    at = page(PageConfig(str(tmp_path / "nothing.sqlite")))
    assert [e.value for e in at.error] == [
        f"no store at {tmp_path / 'nothing.sqlite'}: `llmkpi demo-data` makes a demo one,"
        " `llmkpi import KIND FILE` fills a real one"]
    assert not (tmp_path / "nothing.sqlite").exists()  # the page never creates a store


def test_live_numbers_come_from_prometheus(database: str, tmp_path: Path) -> None:
    queries = (LiveQuery("Answer", "vector(0.25)", "ratio"),
               LiveQuery("Nothing yet", "absent(vector(1))", "seconds"),
               LiveQuery("Broken", "rate(", "seconds"),
               # an overspent budget: the tile clamps it and names the SLO
               LiveQuery("Budget", 'label_replace(vector(-1.5), "slo", "ttft", "", "")',
                         "budget", name_by="slo"),
               LiveQuery("Engine queue", "vector(0.12)", "seconds", group="ttft"))
    with prometheus(tmp_path, {}) as prom:
        at = page(PageConfig(database, prometheus_url=prom.url, live=queries))
    assert metric(at, "Answer") == "25.00 %"
    assert metric(at, "Nothing yet") == "-"
    assert metric(at, "Budget") == "0 % (2.5× spent)"
    body = texts(at)
    assert "ttft" in body
    assert "no series yet" in body and "bad_data" in body
    # the TTFT split is its own row, with what each part holds
    assert metric(at, "Engine queue") == "120 ms"
    assert "Where first tokens' time goes" in body and "KV cache from the prefill pod" in body
    port = processes.free_port()
    at = page(PageConfig(database, prometheus_url=f"http://127.0.0.1:{port}", live=queries))
    assert metric(at, "Answer") == "-" and f"cannot read http://127.0.0.1:{port}" in texts(at)


# --- a real browser --------------------------------------------------------------------------

@pytest.fixture
def running_app(database: str, tmp_path: Path) -> Iterator[str]:
    port = processes.free_port()
    started = processes.start("app", ["app", "--database", database, "--port", str(port)],
                              tmp_path / "logs")
    with processes.running(started):
        processes.wait_http(f"http://127.0.0.1:{port}/_stcore/health", started, timeout=60)
        yield f"http://127.0.0.1:{port}/"


def chrome() -> Any:
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium / chromedriver missing: `make test` installs the Debian packages"
                    " chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,9000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_chromium_shows_north_star_scorecard_and_cost_chart(running_app: str) -> None:
    from selenium.webdriver.common.by import By

    browser = chrome()
    try:
        browser.get(running_app)
        deadline = time.monotonic() + 90
        while True:
            rows = browser.find_elements(By.CSS_SELECTOR, "[class*='st-key-scorecard-row-']")
            chart = browser.find_elements(By.CSS_SELECTOR,
                                          ".st-key-cost-per-token-chart canvas,"
                                          " .st-key-cost-per-token-chart svg")
            running = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")
            if len(rows) == 19 and chart and not running:
                break
            assert time.monotonic() < deadline, f"page did not settle: {len(rows)} rows"
            time.sleep(0.5)
        star = browser.find_element(By.CSS_SELECTOR,
                                    ".st-key-north-star-revenue_per_employee").text
        assert "Revenue per employee" in star and "$" in star
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        first = browser.find_element(By.CSS_SELECTOR, ".st-key-verdict").text
        assert re.search(r"\d+ red · \d+ amber · \d+ green", first), first
        assert "Biggest movers since the previous period" in first
        assert re.search(r"GPU bill \$[\d,]+ .*% of it idle", first)
        assert re.search(r"as of \d{4}-\d\d-\d\d \d\d:\d\d UTC", first)
        budgets = browser.find_element(By.CSS_SELECTOR, ".st-key-slo-budgets").text
        assert "error budget remaining" in budgets and not re.search(r"-\d+ ?%", budgets)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "executive-view.png"))
        for key in ("verdict", "cost-summary", "serving-summary", "slo-budgets"):
            element = browser.find_element(By.CSS_SELECTOR, f".st-key-{key}")
            assert element.screenshot(str(ARTIFACTS / f"{key}.png"))
    finally:
        browser.quit()
