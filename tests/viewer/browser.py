"""Headless Chromium (Debian's chromium + chromium-driver) driven by selenium, with the network
log read from Chrome's performance log, and the checks the viewer tests make on a page."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
    "--window-size=1400,900",
)


@dataclass
class Exchange:
    """One request the page made: its URL and the status (0 when it failed without one)."""

    url: str
    status: int
    error: str = ""

    @property
    def failed(self) -> bool:
        """No answer, or an HTTP error status."""
        return bool(self.error) or self.status >= 400


def start_chromium() -> webdriver.Chrome:
    """A headless Chromium recording its network log."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class NetworkLog:
    """Every request of a driver's pages so far (read from the performance log as it grows)."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.exchanges: dict[str, Exchange] = {}

    def read(self) -> list[Exchange]:
        """The requests seen up to now, in the order they were made."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            request_id = params.get("requestId", "")
            if message["method"] == "Network.requestWillBeSent":
                url = params["request"]["url"]
                self.exchanges.setdefault(request_id, Exchange(url, 0))
            elif message["method"] == "Network.responseReceived" and request_id in self.exchanges:
                self.exchanges[request_id].status = params["response"]["status"]
            elif message["method"] == "Network.loadingFailed" and request_id in self.exchanges:
                self.exchanges[request_id].error = params.get("errorText", "failed")
        return list(self.exchanges.values())

    def dicomweb(self) -> list[Exchange]:
        """The DICOMweb requests seen up to now."""
        return [exchange for exchange in self.read() if "/dicom-web/" in exchange.url]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """``condition()``'s first truthy value, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def element_pixels(driver: webdriver.Chrome, selector: str) -> np.ndarray | None:
    """What the first element matching ``selector`` shows on screen as an RGB array (WebGL
    canvases cannot be read back); ``None`` while there is none (viewers replace theirs)."""
    try:
        element = driver.find_element(By.CSS_SELECTOR, selector)
        png = element.screenshot_as_png
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def shows_an_image(pixels: np.ndarray | None) -> bool:
    """Whether a viewport shows more than a blank background (a CT has many grey levels)."""
    if pixels is None:
        return False
    grey = pixels.mean(axis=2)
    return bool(grey.std() > 20 and len(np.unique(grey.round())) > 32)


def red_overlay_fraction(pixels: np.ndarray | None) -> float:
    """Share of pixels tinted red, as OHIF draws the first segment of a SEG over the image."""
    if pixels is None:
        return 0.0
    red, green, blue = (pixels[..., channel].astype(int) for channel in range(3))
    return float(((red - green > 30) & (red - blue > 30)).mean())


def skip_tour(driver: webdriver.Chrome) -> bool:
    """Click "Skip all" of OHIF's first-visit tour; whether it was there to click."""
    buttons = driver.find_elements(By.XPATH, "//*[normalize-space(text())='Skip all']")
    for button in buttons:
        try:
            button.click()
        except StaleElementReferenceException:
            continue
        return True
    return False


VIEWPORT = "canvas.cornerstone-canvas"
"""OHIF's viewport canvas (cornerstone's)."""


def wait_for_ct_under_seg(driver: webdriver.Chrome, timeout: float = 90) -> None:
    """Wait until OHIF shows a CT (not blank) with a SEG's first segment drawn over it."""
    wait_for(lambda: skip_tour(driver), timeout, "OHIF's first-visit tour (it dims the page)")
    wait_for(
        lambda: shows_an_image(element_pixels(driver, VIEWPORT)), timeout, "the CT in the viewport"
    )
    wait_for(
        lambda: red_overlay_fraction(element_pixels(driver, VIEWPORT)) > 0.05,
        timeout,
        "the SEG's mask drawn over the CT",
    )


def log_in(driver: webdriver.Chrome, base_url: str, user: str, password: str, then: str) -> None:
    """Sign in through the web service's /login form, landing on ``then``."""
    driver.get(f"{base_url}{then}")  # a browser without a session is sent to /login
    wait_for(lambda: driver.find_elements(By.NAME, "username"), 60, "the login form")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/login" not in driver.current_url, 60, f"{then} after signing in")
