"""Downloaders, one per protocol, and the pieces they share (the pooch split).

:mod:`picozoo.hub.download` (the orchestrator) picks a downloader by URL scheme and tries each
source in turn; processors (:mod:`picozoo.hub.unpack`) run afterwards, on the verified bytes.

- :mod:`.base`: the result, the callbacks and the failures a downloader reports;
- :mod:`.sink`: where the bytes go: the ``.part`` file, the running sha256 and the content check;
- :mod:`.file`: ``file://`` sources (a local mirror);
- :mod:`.http`: ``http(s)://`` with resume (``Range`` + ``If-Range``), retries and checks;
- :mod:`.retry`: why an attempt failed, and whether and when to try again;
- :mod:`.redirects`: which redirects are followed;
- :mod:`.watchdog`: the response-header deadline and the low-speed limit.
"""
