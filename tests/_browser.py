"""Headless Debian chromium driven by playwright, for the tests that look at pages in a real browser.

``bash scripts/run test`` installs both (apt's ``chromium``, pip's ``playwright`` pointed at it: no
browser download). Without chromium the tests skip locally and fail under CI. Screenshots go to
``test-artifacts/`` (``GEN3R_TEST_ARTIFACTS`` overrides), kept after the run.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests._tiny import ROOT

ARTIFACTS = Path(os.environ.get("GEN3R_TEST_ARTIFACTS", ROOT / "test-artifacts"))
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "http://127.0.0.1", "ws://127.0.0.1", "http://localhost")


def chromium_path() -> str:
    path = os.environ.get("GEN3R_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed: `bash scripts/run test` installs it (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Page:
    """A playwright page plus every URL it requested."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    def outside_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]

    def screenshot(self, name: str, selector: str | None = None, full_page: bool = False) -> np.ndarray:
        """Save ``test-artifacts/<name>.png`` (of ``selector`` or the page); return it as (H, W, 3) uint8."""
        from PIL import Image

        png = (self.page.locator(selector).first.screenshot() if selector else
               self.page.screenshot(full_page=full_page))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{name}.png").write_bytes(png)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@contextmanager
def browser(width: int = 1280, height: int = 800) -> Iterator[Page]:
    """A fresh headless chromium page (software WebGL)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True,
                              args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        try:
            context = b.new_context(viewport={"width": width, "height": height})
            yield Page(context.new_page())
        finally:
            b.close()


def coloured_fraction(image: np.ndarray, min_saturation: float = 0.25) -> float:
    """Fraction of pixels with a clearly saturated colour (not white, grey or black)."""
    rgb = image.astype(np.float32) / 255
    mx, mn = rgb.max(-1), rgb.min(-1)
    saturation = np.where(mx > 0.05, (mx - mn) / np.maximum(mx, 1e-6), 0)
    return float((saturation > min_saturation).mean())


def drawn_fraction(image: np.ndarray, tolerance: int = 30) -> float:
    """Fraction of pixels that differ from the most common colour (the background) by more than
    ``tolerance`` in some channel: what a renderer drew."""
    flat = image.reshape(-1, 3).astype(np.int32)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float((np.abs(flat - background).max(-1) > tolerance).mean())


def wait_until_drawn(page: Page, name: str, selector: str, minimum: float = 0.01, seconds: float = 30) -> np.ndarray:
    """Screenshot ``selector`` until at least ``minimum`` of it is drawn (WebGL scenes load
    asynchronously); the last screenshot (saved as ``name``) is returned either way."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        image = page.screenshot(name, selector)
        if drawn_fraction(image) >= minimum or time.monotonic() > deadline:
            return image
        page.page.wait_for_timeout(500)
