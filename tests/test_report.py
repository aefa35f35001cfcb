"""studies/report.py: a run as one self-contained HTML page, every picture inlined (tiny model)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.studies import tiny_toml


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.sections = [], 0

    def handle_starttag(self, tag, attrs):
        self.sections += tag == "section"
        self.links += [value for name, value in attrs if name in ("src", "href")]


@pytest.mark.slow
def test_report_is_one_self_contained_page(tiny_model_dir, tmp_path):
    run = run_cli("--config", str(tiny_toml(tmp_path, tiny_model_dir)), "--dataset", "arc-agi-1-eval", "--smallest",
                  "2", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    result = run_cli("report", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "run" / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    assert parser.sections == 2 and parser.links and all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "<svg" in page and "Metrics" in page and "ttft_s" in page
    assert run_cli("report", str(tmp_path)).returncode == 2  # not a run dir: one clear line
