"""Headless Chromium (the system's, Debian package ``chromium``) driven by Playwright.

Playwright's own browser download is never used: ``executable_path`` is the
system binary. When Chromium cannot start, a test fails under CI (``.ci/run``
installs it) and is skipped elsewhere.
"""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots of the page, kept after the run (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):  # .ci/run installs chromium: never skip there
        pytest.fail(f"headless Chromium cannot start: {why}")
    pytest.skip(f"headless Chromium cannot start: {why}")


@asynccontextmanager
async def browser_page(user_data_dir: Path) -> AsyncIterator[Any]:
    """A fresh page in a fresh Chromium profile."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc})")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium on PATH (apt-get install chromium chromium-driver)")
    async with async_playwright() as playwright:
        try:
            context = await playwright.chromium.launch_persistent_context(
                str(user_data_dir),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
        except Exception as exc:  # playwright's own error types
            _unavailable(str(exc).splitlines()[0])
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.js_errors = errors
            yield page
        finally:
            await context.close()


async def wait_page(page: Any, script: str, within: float = 10.0, what: str = "") -> Any:
    """Poll a JS expression in the page until it is truthy; return its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await page.evaluate(script)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or script}")
        await asyncio.sleep(0.05)


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path
