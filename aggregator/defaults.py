"""Defaults of the feeds.yml settings that the stages below ``config`` take as well.

``config`` applies them to feeds.yml; ``types.FeedSpec``, ``fetch.Fetcher`` and
``refresh.updater.PollPolicy`` use the same constants as their own defaults, so a record or a
fetcher built without a configuration (tests, benchmarks, the library) behaves as an
unconfigured service does. Defaults only ``config`` reads stay in ``config/_settings.py``.
"""

from __future__ import annotations

from datetime import timedelta

# News feeds commonly declare a 15-minute TTL (the BBC's carry <ttl>15</ttl>).
DEFAULT_INTERVAL = timedelta(minutes=15)
# Politeness floor for adaptive polling: news outlets publish a few items an hour, so polling
# more often than every 5 minutes mostly earns 304s and risks rate limiting.
DEFAULT_MIN_INTERVAL = timedelta(minutes=5)
# Even a feed that has gone quiet is looked at once a day.
DEFAULT_MAX_INTERVAL = timedelta(hours=24)
# Fetches are network-bound, not CPU-bound: 16 at once polls a typical list of 10-50 feeds in
# one or a few rounds while keeping sockets and memory (16 x max_bytes at worst) bounded.
DEFAULT_CONCURRENCY = 16
# Two connections per host, the long-standing HTTP politeness limit (what browsers' guides and
# reader-style tools use), so feeds that share a host (several sections of one outlet) never
# burst at it.
DEFAULT_PER_HOST = 2
# Per connect/read: a healthy feed server answers within seconds; 20 s tolerates a slow one.
DEFAULT_TIMEOUT = timedelta(seconds=20)
# The whole fetch, redirects and body included; a trickling server cannot hold a slot longer
# (Miniflux uses 20 s for the request alone).
DEFAULT_DEADLINE = timedelta(seconds=60)
# Large real news feeds are 1-2 MB uncompressed; 10 MiB leaves headroom while capping a
# decompression bomb.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
