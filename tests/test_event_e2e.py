"""End to end: `aggregator run` on loopback feeds of several outlets, the default meaning signal.

Six agencies report the Ankara talks in six differently worded headlines; two of them also
carry the same leaders' phone call of the day before, and one the Astana agreement two weeks
earlier. The published feed must hold one record citing all six for the talks, and the near
misses as records of their own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedfarm import Item, rss_document
from servers import LoopbackServer, Reply
from test_cli import SERVICE_START_SECONDS, free_port
from test_match import ASTANA_REPORTS, PHONE_CALL_REPORTS
from test_match_events import SIX_AGENCIES

from aggregator.types import Entry

# The reports keep their spacing in time, moved so the talks were three hours ago (the match
# window is measured back from now) and the phone call the day before them.
TALKS_AGO = timedelta(hours=3)
CALL_BEFORE_TALKS = timedelta(hours=28)


def outlet_of(entry: Entry) -> str:
    return entry.feed_url.removeprefix("https://").split("/")[0].split(".")[0]


def as_item(entry: Entry, published: datetime) -> Item:
    link = f"https://{outlet_of(entry)}.example/{entry.entry_id}"
    return Item(entry.entry_id, entry.title, entry.summary, link, published)


def serve_outlets(server: LoopbackServer, now: datetime) -> list[str]:
    talks = SIX_AGENCIES[0].published
    items: dict[str, list[Item]] = {}
    for report in SIX_AGENCIES:
        when = now - TALKS_AGO + (report.published - talks)
        items.setdefault(outlet_of(report), []).append(as_item(report, when))
    call = PHONE_CALL_REPORTS[0].published
    for report in PHONE_CALL_REPORTS:
        when = now - TALKS_AGO - CALL_BEFORE_TALKS + (report.published - call)
        items.setdefault(outlet_of(report), []).append(as_item(report, when))
    for report in ASTANA_REPORTS:
        when = now - TALKS_AGO - (talks - report.published)
        items.setdefault(outlet_of(report), []).append(as_item(report, when))
    for outlet, its in items.items():
        server.route(f"/{outlet}.xml", Reply(body=rss_document(outlet, its), etag=f'"{outlet}"'))
    return [server.url(f"/{outlet}.xml") for outlet in items]


def published_items(output: Path) -> list[dict]:  # type: ignore[type-arg]
    if not output.exists():
        return []
    items: list[dict] = json.loads(output.read_text())["items"]  # type: ignore[type-arg]
    return items


def test_run_publishes_one_record_per_event(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        urls = serve_outlets(server, datetime.now(UTC))
        feeds = "\n".join(f"  - url: {u}" for u in urls)
        (tmp_path / "feeds.yml").write_text(
            f"settings:\n  allow_networks: ['127.0.0.0/8']\nfeeds:\n{feeds}\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--listen", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        output = tmp_path / "storage" / "merged.json"
        reports = len(SIX_AGENCIES) + len(PHONE_CALL_REPORTS) + len(ASTANA_REPORTS)
        try:
            deadline = time.monotonic() + SERVICE_START_SECONDS
            while time.monotonic() < deadline:
                items = published_items(output)
                cited = sum(len(i["_aggregator"]["sources"]) for i in items)
                if cited == reports:
                    break
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
            else:
                pytest.fail(f"published {published_items(output)}")
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "meaning signal static" in err
    records = {
        frozenset(s["url"].rsplit("/", 1)[-1] for s in item["_aggregator"]["sources"])
        for item in items
    }
    assert records == {
        frozenset(r.entry_id for r in SIX_AGENCIES),
        frozenset(r.entry_id for r in PHONE_CALL_REPORTS),
        frozenset(r.entry_id for r in ASTANA_REPORTS),
    }


def test_run_without_the_chosen_signals_extra_names_the_setting(tmp_path: Path) -> None:
    import importlib.util

    from test_cli import aggregator

    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("the semantic extra is installed here")
    (tmp_path / "feeds.yml").write_text("settings:\n  semantic: minilm\nfeeds: []\n")
    result = aggregator("run", "--listen", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert result.returncode == 1
    assert "settings.semantic: minilm needs the semantic extra" in result.stderr
    assert "Traceback" not in result.stderr
