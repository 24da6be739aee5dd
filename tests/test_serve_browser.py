"""End to end in headless Chromium: the explorer page of a tiny trained run.

Needs Debian's `chromium` and `chromium-driver` (installed by .ci/system-packages) and
selenium (the dev extra); skips with a reason where any of them is missing. The
screenshots are saved in the test's temporary folder (printed with -s / on failure).
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver",)


def _find(candidates, name):
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


@pytest.fixture(scope="module")
def browser_paths():
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    chromium = _find(CHROMIUM_CANDIDATES, "chromium")
    driver = _find(CHROMEDRIVER_CANDIDATES, "chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (.ci/system-packages)")
    return chromium, driver


@pytest.fixture(scope="module")
def server(browser_paths, tmp_path_factory):
    """A tiny run (one epoch on 32 faces) served on a free loopback port."""
    from test_serve import train_tiny_run

    from illustration_gan.serve import create_app, explorer_of, make_server

    run_dir = train_tiny_run(tmp_path_factory.mktemp("browser"))
    app = create_app(str(run_dir))
    explorer_of(app).warm_up()
    httpd = make_server(app)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def driver(browser_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                     "--no-first-run", "--window-size=1280,2300",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def _grid_images(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#grid img')).map("
        "  i => [i.getAttribute('src'), i.complete, i.naturalWidth]);"
    )


def _wait_for_loaded_grid(driver, wait, previous=None):
    def loaded(d):
        images = _grid_images(d)
        if not images or (previous is not None and [i[0] for i in images] == previous):
            return False
        return images if all(complete and width > 0 for _, complete, width in images) else False

    return wait.until(loaded)


def test_page_shows_new_faces_nearest_images_and_an_interpolation(driver, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(server + "/")
    first = _wait_for_loaded_grid(driver, wait)
    assert len(first) == 32
    assert all(src.startswith("/api/face/") for src, _, _ in first)
    captions = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#grid figcaption")]
    assert captions[0] == "seed " + first[0][0].split("/")[-1].split(".")[0]
    wait.until(lambda d: "not measured" in d.find_element(By.ID, "run-facts").text)  # FID of a fresh run
    assert "dcgan" in driver.find_element(By.ID, "run-line").text
    driver.save_screenshot(str(tmp_path / "page-first.png"))

    driver.find_element(By.ID, "new-faces").click()
    second = _wait_for_loaded_grid(driver, wait, previous=[i[0] for i in first])
    assert {s for s, _, _ in second}.isdisjoint({s for s, _, _ in first})  # new seeds, new images
    assert driver.execute_script("return document.querySelector('#grid img').naturalWidth") == 32

    # A face opens large with its nearest training images.
    driver.find_elements(By.CSS_SELECTOR, "#grid .face button")[0].click()
    wait.until(lambda d: d.find_element(By.ID, "face-dialog").get_attribute("open") is not None)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nearest img")) == 5)
    wait.until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#nearest img, #dialog-img')).every(i => i.complete && i.naturalWidth > 0)"))
    assert driver.find_element(By.ID, "dialog-download").get_attribute("href").endswith("?download=1")
    driver.save_screenshot(str(tmp_path / "page-face.png"))
    driver.find_element(By.ID, "use-a").click()

    # Interpolate between two faces typed as seeds.
    seed_b = driver.find_element(By.ID, "seed-b")
    seed_b.clear()
    seed_b.send_keys("12345")
    driver.find_element(By.CSS_SELECTOR, "#interp-form button[type=submit]").click()
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('interp-frame'); return i.complete && i.naturalWidth > 0 && i.src.includes('b=12345')"))
    frame_before = driver.find_element(By.ID, "interp-frame").get_attribute("src")
    driver.execute_script(
        "const s = document.getElementById('interp-t'); s.value = '4'; s.dispatchEvent(new Event('input'));")
    wait.until(lambda d: d.find_element(By.ID, "interp-frame").get_attribute("src") != frame_before)
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('interp-frame'); return i.complete && i.naturalWidth > 0"))
    assert "interpolate.gif" in driver.find_element(By.ID, "interp-gif").get_attribute("href")

    # A bad seed typed in the seed box is refused with a message, not a request.
    box = driver.find_element(By.ID, "seed-input")
    box.send_keys("not-a-seed")
    driver.find_element(By.CSS_SELECTOR, "#seed-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "message").is_displayed())

    shot = tmp_path / "page.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshots: {tmp_path}")
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe  # no failed request, no script error, no blocked external asset
