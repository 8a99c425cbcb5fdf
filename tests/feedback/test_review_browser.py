"""The review queue in a real browser (Debian's chromium through Selenium): an analyst logs in and works
the queue by keyboard, then the database is checked. REVIEW_SCREENSHOT=path saves the README's picture."""

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from detectors.models import Anomaly, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_execute
from feedback.models import AuditLog, Label, ReviewClaim
from feedback.services.labels import anomalies_label
from ingestion.models import Series
from tests.detectors.helpers import dataset_with_series, series_frame, utc

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; ./test.sh installs them when run as root)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def busy_detector(team):
    """A z-score detector with six spikes (six incidents) on one hourly series."""
    dataset = dataset_with_series(team, [series_frame(spikes=(250, 310, 370, 430, 490, 550))])
    detector = detector_create(dataset=dataset, name="checkout latency", algorithm="zscore")
    run_execute(run=run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-02")))
    assert Anomaly.objects.filter(detector=detector).count() >= 6
    return detector


def log_in(driver, base_url: str) -> None:
    driver.get(f"{base_url}/accounts/login/?next=/review/")
    driver.find_element(By.NAME, "username").send_keys("bob")
    driver.find_element(By.NAME, "password").send_keys("pw-bob\n")
    wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, ".item.current"))


def drag(driver, svg, start: int, length: int) -> None:
    """Drag across a plot from `start` pixels off its centre."""
    ActionChains(driver).move_to_element_with_offset(svg, start, 0).click_and_hold().move_by_offset(
        length, 0
    ).release().perform()


def wait(driver, condition, timeout=10):
    return WebDriverWait(driver, timeout).until(lambda d: condition())


def press(driver, keys: str) -> None:
    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def test_an_analyst_works_the_queue_by_keyboard(browser, live_server, teammate, busy_detector):
    log_in(browser, live_server.url)
    items = browser.find_elements(By.CSS_SELECTOR, ".item")
    ids = [int(item.get_attribute("data-id")) for item in items]
    current = lambda: browser.find_element(By.CSS_SELECTOR, ".item.current").get_attribute("data-id")  # noqa: E731
    done = lambda i: "done" in items[i].get_attribute("class")  # noqa: E731

    browser.find_element(By.CSS_SELECTOR, f"#item-{ids[0]} .note").click()
    browser.find_element(By.CSS_SELECTOR, f"#item-{ids[0]} .note").send_keys("real outage\n")
    press(browser, "c")
    wait(browser, lambda: done(0) and current() == str(ids[1]))
    press(browser, "f")
    wait(browser, lambda: done(1) and current() == str(ids[2]))
    press(browser, "j")
    assert current() == str(ids[3])
    press(browser, "k")
    assert current() == str(ids[2])
    press(browser, "s")
    wait(browser, lambda: done(2) and current() == str(ids[3]))
    press(browser, "xjx")  # select two, then one verdict for both
    press(browser, "e")
    wait(browser, lambda: done(3) and done(4))

    svg = items[5].find_element(By.CSS_SELECTOR, ".plot svg")
    ActionChains(browser).move_to_element_with_offset(svg, -200, 0).click_and_hold().move_by_offset(
        120, 0
    ).release().perform()
    form = items[5].find_element(By.CSS_SELECTOR, "form.missed")
    wait(browser, form.is_displayed)
    start, end = (form.find_element(By.NAME, name).get_attribute("value") for name in ("start", "end"))
    form.find_element(By.NAME, "note").send_keys("slow leak\n")
    wait(browser, lambda: "Marked a missed anomaly" in browser.find_element(By.ID, "flash").text)

    verdicts = dict(Label.objects.filter(current=True, created_by=teammate).values_list("anomaly_id", "verdict"))
    assert {k: v for k, v in verdicts.items() if k in ids} == {
        ids[0]: "confirmed", ids[1]: "false_positive", ids[3]: "expected", ids[4]: "expected"}  # fmt: skip
    statuses = dict(Anomaly.objects.filter(pk__in=ids).values_list("pk", "review_status"))
    assert [statuses[i] for i in ids[:5]] == ["confirmed", "false_positive", "unreviewed", "expected", "expected"]
    assert Label.objects.get(anomaly_id=ids[0]).note == "real outage"
    assert not ReviewClaim.objects.filter(anomaly_id__in=ids[:5]).exists()  # labelled or skipped: none held
    missed = Label.objects.get(verdict="missed")
    series = Series.objects.get(dataset=busy_detector.dataset)
    assert (missed.series, missed.detector, missed.note, missed.created_by) == (
        series,
        busy_detector,
        "slow leak",
        teammate,
    )
    assert missed.start_ts.isoformat().replace("+00:00", "Z") == start and missed.end_ts > missed.start_ts
    assert missed.end_ts.isoformat().replace("+00:00", "Z") == end
    audit = list(AuditLog.objects.filter(actor=teammate).values_list("action", "target_id"))
    assert sorted(audit) == sorted([("label", ids[0]), ("label", ids[1]), ("label", ids[3]), ("label", ids[4]),
                                    ("missed", missed.anomaly_id)])  # fmt: skip


@pytest.mark.skipif(not os.environ.get("REVIEW_SCREENSHOT"), reason="REVIEW_SCREENSHOT=path takes the README's picture")
def test_screenshot_for_the_readme(browser, live_server, teammate, busy_detector):
    first, second = Anomaly.objects.filter(detector=busy_detector).order_by("start_ts")[:2]
    anomalies_label(anomalies=[first], verdict="false_positive", user=teammate, note="nightly batch job")
    anomalies_label(anomalies=[second], verdict="confirmed", user=teammate, note="disk full on db-2")
    log_in(browser, live_server.url)
    press(browser, "x")
    drag(browser, browser.find_element(By.CSS_SELECTOR, ".item.current .plot svg"), 300, 60)
    browser.find_element(By.CSS_SELECTOR, ".item.current form.missed [name=note]").send_keys("slow leak")
    path = Path(os.environ["REVIEW_SCREENSHOT"])
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(path))
