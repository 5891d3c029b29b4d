"""Screenshots of the three ways to look at a result, for docs/viewer.md (headless chromium).

    bash scripts/run python scripts/docs_screenshots.py     # ~1 min on 2 CPU cores

One demo scene of the embedded mini model (example ``room``, orbit_left) is exported, then shown in
``gen3r view``, in the ``gen3r export-html`` page and in ``gen3r app`` after one run; the PNGs go to
docs/images/. The browser and port helpers are the tests' (tests/_browser.py, tests/_tiny.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from _browser import browser, wait_until_drawn  # noqa: E402
from _tiny import free_port  # noqa: E402

from gen3r.app import Gen3RApp, launch  # noqa: E402
from gen3r.cli.demo import EXAMPLES_DIR, examples  # noqa: E402
from gen3r.io.html import export_html  # noqa: E402
from gen3r.io.results import export_output  # noqa: E402
from gen3r.io.viewer import start  # noqa: E402
from gen3r.pipeline import Gen3RPipeline  # noqa: E402
from gen3r.pipeline.loading import MINI_MODEL  # noqa: E402
from gen3r.pipeline.preprocess import read_image  # noqa: E402

OUT = ROOT / "docs" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    example = examples()["room"]
    image = EXAMPLES_DIR / "room.png"
    pipe = Gen3RPipeline.from_pretrained(MINI_MODEL, torch_dtype=torch.float32)
    work = Path(tempfile.mkdtemp(prefix="gen3r-shots-"))
    output = pipe([read_image(image)], cameras="orbit_left", prompt=example["caption"],
                  generator=torch.Generator().manual_seed(0))
    folder = export_output(output, work / "room")

    page_file = export_html(folder)
    with browser(1280, 720) as b:
        b.page.goto(page_file.as_uri())
        b.page.wait_for_selector("#scene .gl-container canvas", timeout=60_000)
        wait_until_drawn(b, "docs-export-html", "#scene")
        (OUT / "export-html.png").write_bytes(b.page.screenshot())

    server, viewer = start(folder, port=free_port())
    try:
        viewer.set_frame(8)
        with browser(1280, 720) as b:
            b.page.goto(f"http://127.0.0.1:{server.get_port()}/")
            b.page.wait_for_selector("canvas", timeout=60_000)
            b.page.wait_for_timeout(4000)
            (OUT / "viewer.png").write_bytes(b.page.screenshot())
    finally:
        viewer.close()
        server.stop()

    app = Gen3RApp(pipe, work / "app")
    port = free_port()
    ui = launch(app, port=port, block=False, examples=[(str(image), example["caption"])])
    try:
        with browser(1400, 1000) as b:
            b.page.goto(f"http://127.0.0.1:{port}/")
            b.page.locator("#first input[type=file]").set_input_files(str(image))
            b.page.fill("textarea", example["caption"])
            b.page.click("#run")
            b.page.wait_for_selector("#files a", timeout=300_000)
            wait_until_drawn(b, "docs-app-scene", "#scene canvas")
            (OUT / "app.png").write_bytes(b.page.screenshot(full_page=True))
    finally:
        ui.close()
    print(f"wrote {OUT}/viewer.png, export-html.png, app.png")


if __name__ == "__main__":
    main()
