"""History: record everything the service receives, store it for research.

Layout (one concern per file):

- ``pipeline.py``: the hot-path hooks (a bounded deque append of what the
  engine already has) and the writer thread that drains it, off the event loop.
- ``worker.py``: the history process, which writes the recording and the rows.
- ``channel.py``: the byte ring in shared memory the thread writes into and the
  history process reads.
- ``recorder.py``: gzip recording files, one per symbol per hour or day,
  rotated, with retention by age and total size; read back by
  ``market_data.capture`` (``market-data replay``, ``market-data sim --replay``).
- ``schema/rows.py``: pure: recorded items in, tardis.dev-shaped rows out.
- ``parquet.py``: the partitioned Parquet store (pyarrow, the ``history`` extra).
- ``summary.py``: what is stored (``market-data history``).
"""
