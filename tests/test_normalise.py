"""normalise_entry, plain_text and canonical_url: named cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.normalise import (
    FUTURE_TOLERANCE,
    SUMMARY_MAX_CHARS,
    TITLE_MAX_CHARS,
    canonical_url,
    normalise_entry,
    plain_text,
)
from aggregator.types import ParsedEntry

NOW = datetime(2024, 4, 12, 12, 0, tzinfo=UTC)
FEED = "https://feed.example/rss"

PLAIN_TEXT_CASES = {
    "entities": ("Fish &amp; Chips &#8211; &quot;fresh&quot;", 'Fish & Chips – "fresh"'),
    "tags stripped, text kept": ("<p>Hello <b>world</b></p>", "Hello world"),
    "script content dropped": ("<script>alert(1)</script>Safe", "Safe"),
    "style content dropped": ("<style>p{}</style>Body", "Body"),
    "event handler dropped": ('<img src="x" onerror="alert(1)">Pic', "Pic"),
    "double-escaped markup": ("&lt;b&gt;Bold&lt;/b&gt; claim", "Bold claim"),
    "triple-escaped markup": ("&amp;lt;i&amp;gt;Lean&amp;lt;/i&amp;gt;", "Lean"),
    "comparison survives": ("x &lt; y and y &gt; z", "x < y and y > z"),
    "NFKC ligature and width": ("ﬁnance ＡＢＣ ①", "finance ABC 1"),
    "NFKC non-breaking space": ("a\u00a0b", "a b"),
    "whitespace folded": ("  lots \n\t of\r\n   space  ", "lots of space"),
    "control characters": ("bell\x07 and\x00 null", "bell and null"),
    "comment dropped": ("before<!-- hidden -->after", "beforeafter"),
    "empty": ("", ""),
    # Markup feedparser's sanitiser used to see first (it is off): nh3 alone must flatten it.
    "noscript attribute breakout": (
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>Ok',
        "Ok",
    ),
    "template script": ("<template><script>alert(1)</script></template>T", "T"),
    "textarea holds markup": ("<textarea><img src=x onerror=alert(1)></textarea>X", "X"),
    "math/style mutation": (
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style>"
        "</mglyph></table></mtext></math>M",
        "M",
    ),
    "svg style with escaped markup": (
        "<svg><style>&lt;img src=x onerror=alert(1)&gt;</style></svg>V",
        "V",
    ),
    "numeric-entity script": ("&#60;script&#62;alert(1)&#60;/script&#62;E", "E"),
    "xmp": ("<xmp><script>alert(1)</script></xmp>X", "X"),
    "nested angle brackets": ("<<script>script>alert(1)<</script>/script>P", "P"),
    "iframe srcdoc": ('<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>I', "I"),
    "split tag leaves inert text": ("<scr<script>ipt>alert(1)</script>S", "ipt>alert(1)S"),
}


@pytest.mark.parametrize(("raw", "expected"), PLAIN_TEXT_CASES.values(), ids=PLAIN_TEXT_CASES)
def test_plain_text(raw: str, expected: str) -> None:
    assert plain_text(raw) == expected


CANONICAL_CASES: dict[str, tuple[str, str | None]] = {
    "case of scheme and host": ("HTTPS://News.Example.COM/Path", "https://news.example.com/Path"),
    "default https port": ("https://a.example:443/x", "https://a.example/x"),
    "default http port": ("http://a.example:80/x", "http://a.example/x"),
    "other port kept": ("http://a.example:8080/x", "http://a.example:8080/x"),
    "fragment dropped": ("https://a.example/x#comments", "https://a.example/x"),
    "utm params": (
        "https://a.example/x?utm_source=rss&utm_MEDIUM=feed&id=7",
        "https://a.example/x?id=7",
    ),
    "click ids": (
        "https://a.example/x?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&igshid=5&yclid=6&_ga=7&ref_src=8",
        "https://a.example/x",
    ),
    "params sorted": ("https://a.example/x?b=2&a=1", "https://a.example/x?a=1&b=2"),
    "blank value kept": ("https://a.example/x?flag=", "https://a.example/x?flag="),
    "empty path": ("https://a.example", "https://a.example/"),
    "user info dropped": ("https://user:pw@a.example/x", "https://a.example/x"),
    "trailing dot of host": ("https://a.example./x", "https://a.example/x"),
    "javascript": ("javascript:alert(1)", None),
    "data": ("data:text/html,<script>alert(1)</script>", None),
    "ftp": ("ftp://a.example/x", None),
    "relative": ("/x/y", None),
    "bad port": ("https://a.example:99999/x", None),
    "empty": ("", None),
}


@pytest.mark.parametrize(("raw", "expected"), CANONICAL_CASES.values(), ids=CANONICAL_CASES)
def test_canonical_url(raw: str, expected: str | None) -> None:
    assert canonical_url(raw) == expected


def entry(**fields: object) -> ParsedEntry:
    base: dict[str, object] = {"id": "id-1", "title": "Title", "link": "https://a.example/x"}
    base.update(fields)
    return ParsedEntry(**base)  # type: ignore[arg-type]


def test_full_entry() -> None:
    published = datetime(2024, 4, 12, 7, 15, tzinfo=UTC)
    result = normalise_entry(
        entry(
            title="Talks &amp; <em>more</em>",
            link="https://a.example/x?utm_source=rss#top",
            summary="<p>Delegates   met.</p>",
            author="<b>A. Moreau</b>",
            published=published,
        ),
        FEED,
        NOW,
    )
    assert result.feed_url == FEED
    assert result.entry_id == "id-1"
    assert result.title == "Talks & more"
    assert result.summary == "Delegates met."
    assert result.link == "https://a.example/x?utm_source=rss#top"
    assert result.url == "https://a.example/x"
    assert result.author == "A. Moreau"
    assert (result.published, result.updated, result.first_seen) == (published, None, NOW)
    assert result.key == (FEED, "id-1")


def test_summary_falls_back_to_content() -> None:
    result = normalise_entry(entry(summary=None, content="<p>Body text</p>"), FEED, NOW)
    assert result.summary == "Body text"


def test_missing_title_comes_from_summary() -> None:
    result = normalise_entry(entry(title=None, summary="Short note"), FEED, NOW)
    assert result.title == "Short note"


def test_long_text_is_trimmed_at_a_word() -> None:
    words = "word " * 1000
    result = normalise_entry(entry(title=words, summary=words), FEED, NOW)
    assert len(result.title) <= TITLE_MAX_CHARS
    assert len(result.summary) <= SUMMARY_MAX_CHARS
    assert result.title.endswith("word…")


def test_missing_date_is_time_first_seen() -> None:
    result = normalise_entry(entry(), FEED, NOW)
    assert result.published == NOW
    assert result.updated is None


def test_updated_stands_in_for_missing_published() -> None:
    updated = NOW - timedelta(hours=3)
    assert normalise_entry(entry(updated=updated), FEED, NOW).published == updated


def test_far_future_date_is_clamped_to_now() -> None:
    future = NOW + timedelta(days=400)
    result = normalise_entry(entry(published=future, updated=future), FEED, NOW)
    assert result.published == NOW
    assert result.updated is None


def test_small_clock_skew_is_kept() -> None:
    ahead = NOW + FUTURE_TOLERANCE - timedelta(seconds=1)
    assert normalise_entry(entry(published=ahead), FEED, NOW).published == ahead


def test_implausibly_old_date_is_now() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert normalise_entry(entry(published=epoch), FEED, NOW).published == NOW


def test_dates_become_utc() -> None:
    from datetime import timezone

    local = datetime(2024, 4, 12, 9, 15, tzinfo=timezone(timedelta(hours=2)))
    result = normalise_entry(entry(published=local), FEED, NOW)
    assert result.published == datetime(2024, 4, 12, 7, 15, tzinfo=UTC)
    assert result.published.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:x",
        "file:///etc/passwd",
    ],
)
def test_unsafe_links_are_dropped(link: str) -> None:
    result = normalise_entry(entry(link=link), FEED, NOW)
    assert (result.link, result.url) == (None, None)


def test_script_injection_in_every_text_field() -> None:
    result = normalise_entry(
        entry(
            title='<script>alert("t")</script>Headline<img src=x onerror=alert(1)>',
            summary='<a href="javascript:alert(1)" onclick="x()">click</a> &lt;script&gt;',
            content="<iframe src='https://evil.example'></iframe>Body",
            author="<svg onload=alert(1)>Writer</svg>",
        ),
        FEED,
        NOW,
    )
    for text in (result.title, result.summary, result.author or ""):
        assert "<" not in text and ">" not in text
    assert (result.title, result.summary, result.author) == ("Headline", "click", "Writer")


def test_content_hash_tracks_edits() -> None:
    original = normalise_entry(entry(summary="Ten people were hurt."), FEED, NOW)
    same = normalise_entry(entry(summary="<p>Ten  people were hurt.</p>"), FEED, NOW + timedelta(1))
    edited = normalise_entry(entry(summary="Twelve people were hurt."), FEED, NOW)
    retitled = normalise_entry(entry(title="New title", summary="Ten people were hurt."), FEED, NOW)
    relinked = normalise_entry(
        entry(link="https://a.example/y", summary="Ten people were hurt."), FEED, NOW
    )
    assert original.content_hash == same.content_hash
    hashes = {
        original.content_hash,
        edited.content_hash,
        retitled.content_hash,
        relinked.content_hash,
    }
    assert len(hashes) == 4


def test_edit_beyond_the_summary_limit_changes_the_hash() -> None:
    body = "word " * 400
    a = normalise_entry(entry(content=body + "ending one"), FEED, NOW)
    b = normalise_entry(entry(content=body + "ending two"), FEED, NOW)
    assert a.summary == b.summary
    assert a.content_hash != b.content_hash
