"""Refresh: one feed from fetch to store, keeping the match index in step with storage.

::

    due feeds | fetch (parallel, bounded)                       updater, fetch/
              | parse + normalise + features (process pool)     parse_pool
              | decide new/changed (pure)                       decide
              | match (the index, in its own process)          index, index_process
              | store (one transaction per feed)                store, writer
              | next due time (pure)                            schedule

- ``updater``: ``Updater.refresh`` / ``refresh_many``, the outcome of each feed.
- ``store``: the match-and-store strategy (pipelined for one SQLite writer, locked for shared
  PostgreSQL), chosen once by ``choose_store`` where the runtime is built.
- ``writer``: storage writes one at a time off the event loop, state-only writes batched.
- ``index``: the ``StoryIndex`` protocol and ``LocalStoryIndex``, which builds the
  ``Matcher``; ``index_process``: the same index in a child process.
- ``processes``: what every child process needs (spawn, exit with the parent, collector).

This file imports nothing, so a parse worker that imports
``parse_pool`` loads only the parsing stack.
"""
