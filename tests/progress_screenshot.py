"""Make docs/images/progress.png: the terminal during a real run with the display on.

Runs ``progress_driver.py`` in a pseudo-terminal, replays what it wrote into a
terminal emulator (pyte) up to the moment after its 5th result was logged, and
screenshots that screen, colours included, in Debian's chromium. Development
tool: ``pip install pyte playwright``, then ``python tests/progress_screenshot.py``.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pyte
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.style import Style
from rich.text import Text

HERE = Path(__file__).parent
OUT = HERE.parent / "docs" / "images" / "progress.png"
COLUMNS, ROWS = 110, 24


def terminal_output() -> bytes:
    controller, terminal = pty.openpty()
    os.set_blocking(controller, True)
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm-256color"}
    with tempfile.TemporaryDirectory() as scratch:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "progress_driver.py"), "on", scratch],
            stdout=terminal,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait()
    return b"".join(chunks)


def screen_after(output: bytes, results: int) -> pyte.Screen:
    """The screen once the display was redrawn after the ``results``-th result line."""
    at = 0
    for _ in range(results):
        at = min(
            position
            for marker in (b" completed in ", b" failed after ")
            if (position := output.find(marker, at + 1)) >= 0
        )
    following_log = output.find(b"LOG ", at)
    erase = output.rfind(b"\r\x1b[2K", at, following_log)  # rich erasing its display
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output[:erase])
    return screen


def as_text(screen: pyte.Screen) -> Text:
    text = Text()
    for row in range(screen.lines):
        line = screen.buffer[row]
        for column in range(screen.columns):
            char = line[column]
            color = None if char.fg == "default" else char.fg
            if color and len(color) == 6 and all(c in "0123456789abcdefABCDEF" for c in color):
                color = f"#{color}"
            style = Style(color=color, bold=char.bold, dim=getattr(char, "dim", False))
            text.append(char.data, style=style)
        text.append("\n")
    return text


def main() -> None:
    screen = screen_after(terminal_output(), results=6)
    console = Console(record=True, width=COLUMNS, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(as_text(screen))
    with tempfile.TemporaryDirectory() as scratch:
        svg = Path(scratch) / "progress.html"
        # rich's SVG loads its font from a CDN; offline, chromium's monospace serves.
        page_svg = re.sub(
            r"@font-face\s*\{.*?\}",
            "",
            console.export_svg(title="python campaign.py"),
            flags=re.DOTALL,
        )
        svg.write_text(f"<html><body style='margin:0'>{page_svg}</body></html>")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1100, "height": 620})
            page.goto(svg.as_uri())
            page.locator("svg").screenshot(path=str(OUT))
            browser.close()
    print(OUT)


if __name__ == "__main__":
    main()
