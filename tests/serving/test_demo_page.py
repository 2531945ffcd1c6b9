"""The demo page (src/bertserve/static/index.html) in real headless Chromium against a real
`bertserve serve` process: type a sentence, press Enter, see one bar per label with the model's
probabilities and the latency; the button works too; errors appear in the page.

Skips only where Chromium, chromedriver or selenium is missing. The screenshot is written to
pytest's temporary folder (its path is printed; run with -s to see it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

MODEL = "tiny"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=900,640",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # An explicit chromedriver path keeps Selenium Manager from trying to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, condition, seconds: float = 15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def result_rows(driver) -> list[tuple[str, float, str, str]]:
    """(label, probability, shown number, bar width) for each bar on the page."""
    from selenium.webdriver.common.by import By

    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#results .result"):
        bar = row.find_element(By.CSS_SELECTOR, ".bar")
        rows.append((
            row.get_attribute("data-label"),
            float(row.get_attribute("data-probability")),
            row.find_element(By.CSS_SELECTOR, ".value").text,
            bar.value_of_css_property("width"),
        ))
    return rows


def test_type_enter_and_see_bars(tiny_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from bertserve.inference.model import ExportedModel

    url, version = tiny_server
    text = "这家酒店的服务很好，房间也很干净。"
    expected = ExportedModel.load(version).predict_texts([text])[0].tolist()

    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready")
    assert [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#model option")] == [MODEL]

    box = browser.find_element(By.ID, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")

    rows = result_rows(browser)
    assert [row[0] for row in rows] == ["negative", "positive"]
    assert [row[1] for row in rows] == pytest.approx(expected, abs=1e-6)
    assert [row[2] for row in rows] == [f"{p:.4f}" for p in expected]
    assert all(float(row[3].removesuffix("px")) > 0 for row in rows)
    top = browser.find_element(By.CSS_SELECTOR, "#results .result.top").get_attribute("data-label")
    assert top == ["negative", "positive"][expected.index(max(expected))]
    latency = browser.find_element(By.ID, "latency")
    assert latency.text.startswith("round trip: ") and latency.text.endswith(" ms")
    assert float(latency.get_attribute("data-ms")) > 0
    assert not browser.find_element(By.ID, "error").is_displayed()
    # Enter submitted the sentence; it did not add a line break to it.
    assert browser.find_element(By.ID, "text").get_attribute("value") == text

    screenshot = tmp_path / "demo_page.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"\ndemo page screenshot: {screenshot}")


def test_button_and_query_string(tiny_server, browser):
    from selenium.webdriver.common.by import By

    url, _ = tiny_server
    browser.get(url + "/?text=%E5%A4%AA%E5%B7%AE%E4%BA%86")  # 太差了: predicted on load
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
    assert browser.find_element(By.ID, "text").get_attribute("value") == "太差了"
    first = result_rows(browser)
    assert len(first) == 2

    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("还行吧")
    browser.execute_script("document.body.dataset.state = 'waiting'")
    browser.find_element(By.ID, "predict").click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
    assert sum(row[1] for row in result_rows(browser)) == pytest.approx(1.0, abs=1e-5)


def test_errors_show_in_the_page(tiny_server, browser):
    from selenium.webdriver.common.by import By

    url, _ = tiny_server
    browser.get(url + "/")
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready")
    browser.find_element(By.ID, "predict").click()  # nothing typed
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and error.text == "Type a sentence first."

    # A server refusal (an over-long body) is shown with its status and message, not swallowed.
    browser.execute_script("document.getElementById('text').value = 'x'.repeat(3000000)")
    browser.find_element(By.ID, "predict").click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
    assert error.is_displayed() and error.text.split(":")[0] in ("400", "413")

    browser.get(url + "/?model=missing")
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
    assert browser.find_element(By.ID, "error").text == f"no model named missing (models: {MODEL})"
