"""The web view: one page served by the service on its HTTP port, read-only.

- ``ui.py``: the routes (``/`` redirects to ``/ui``, ``/ui``, ``/ui/static/*``,
  ``/ui/ws``) mounted on the service's aiohttp application;
- ``push.py``: the conflation (the latest view every 100 ms if it changed,
  never a queue of updates) and one page's push loop (the ``--workers``
  front), a bounded send, and a slow or stuck browser dropped;
- ``fanout.py``: the service's pages served from one tick: each view built and
  framed once, then one short event-loop step per page;
- ``snapshot.py``: the view model, built from the service's state (overview of
  every symbol, one symbol's ladder, tape and 24h figures);
- ``tape.py``: the recent trades of each symbol (a sink beside Redis and shm);
- ``auth.py``: the optional ``ui_token`` guard (constant-time compare);
- ``front.py``: the same page behind ``run --workers N``: the supervisor's
  front merges the workers' views;
- ``static/``: ``index.html``, ``app.js``, ``style.css``: plain HTML, CSS and
  JavaScript, nothing fetched from elsewhere.
"""
