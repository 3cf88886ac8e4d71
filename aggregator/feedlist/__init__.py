"""Managing the feed list: find a site's feed, add or remove feeds in feeds.yml, OPML in and out.

::

    discover  a URL or a site's page -> the feed URL it is or links to (fetch + parse)
    edit      add / remove feeds in feeds.yml as text, comments kept, validated, atomic
    opml      OPML subscription lists -> feeds.yml (through ``edit``), config -> OPML
"""

from __future__ import annotations

from aggregator.feedlist.discover import (
    FEED_LINK_TYPES,
    FoundFeed,
    discover_feed,
    feed_links,
    find_feed,
    suggest_url,
)
from aggregator.feedlist.edit import (
    add_feed_to_config,
    add_feeds_to_config,
    remove_feed_from_config,
)
from aggregator.feedlist.opml import (
    OpmlImport,
    export_opml,
    import_opml,
    import_opml_report,
    read_opml,
)

__all__ = [
    "FEED_LINK_TYPES",
    "FoundFeed",
    "OpmlImport",
    "add_feed_to_config",
    "add_feeds_to_config",
    "discover_feed",
    "export_opml",
    "feed_links",
    "find_feed",
    "import_opml",
    "import_opml_report",
    "read_opml",
    "remove_feed_from_config",
    "suggest_url",
]
