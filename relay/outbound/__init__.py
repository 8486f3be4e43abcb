"""Outbound HTTP delivery: everything the relay sends to URLs outside itself.

- ``urlpolicy``: which user-supplied URLs may be fetched (the SSRF allow-list) and
  the pinned target to fetch;
- ``client``: the one way an httpx client is built for outbound requests;
- ``delivery``: a bounded queue, worker tasks and the retry heap (``retry``, with
  the back-off rule);
- ``relay.logsafe.redact_url``: how an outbound URL appears in a log line.

Users: push delivery (``relay.push``: webhook, ntfy, Expo, FCM, APNs) and API v4
monitor callbacks (``relay.v4.callbacks``). Each keeps its own rules for what an
answer means and what survives a restart; the moving parts are here.
"""
