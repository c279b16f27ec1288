"""Takes docs/images/trigger-form.png: the Airflow trigger form of ct-body-mask on a local site.

Needs Debian's ``chromium`` and ``chromium-driver`` and PyPI ``selenium``. Starts a throw-away
local Airflow (as ``openjip site up`` does), logs in as admin, opens the workflow's trigger form
with a series filled in, and saves the screenshot. Usage:
``.venv/bin/python docs/images/screenshot_trigger_form.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from openjip.airflow.local import AirflowComponent
from openjip.config import Settings
from openjip.config.settings import AirflowSettings

OUT = Path(__file__).with_name("trigger-form.png")
SERIES = "1.2.826.0.1.3680043.8.498.60707142849889425240019178113068202318"


def main() -> None:
    """Start Airflow, drive chromium to the form, save the screenshot."""
    home = Path(tempfile.mkdtemp(prefix="openjip-screenshot-"))
    airflow = AirflowComponent(Settings(home=home, airflow=AirflowSettings(port=0)))
    airflow.start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1400,1050"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(browser, 60)
    try:
        browser.get(airflow.url + "/")
        wait.until(ready.presence_of_element_located((By.NAME, "username")))
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(airflow.password())
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        time.sleep(3)
        browser.get(airflow.url + "/dags/ct-body-mask")
        trigger = (By.XPATH, "//button[normalize-space()='Trigger']")
        wait.until(ready.element_to_be_clickable(trigger)).click()
        field = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "textarea")))
        field.send_keys(SERIES)
        time.sleep(2)
        browser.save_screenshot(str(OUT))
        print(f"wrote {OUT}")
    finally:
        browser.quit()
        airflow.stop()


if __name__ == "__main__":
    main()
