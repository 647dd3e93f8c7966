#!/usr/bin/env python3
"""Publish into a room through the gateway's server API, with nothing but the standard library.

    RT_API_KEY=... python3 scripts/server-api/publish.py http://gateway-internal:9090 chat:lobby chat:message '{"from":"py","text":"hi"}' [idempotency-key]

Prints the JSON answer ({"ok": true, "room": ..., "seq": ..., "duplicate": ...}); exits 1 on an error
answer (the protocol's {"ok": false, "error": {"code", "message"}}) and 2 on bad arguments.
See docs/server-api.md.
"""
import json
import os
import sys
import urllib.error
import urllib.request


def publish(base_url, api_key, room, type_, payload, idempotency_key=None):
    body = {"room": room, "type": type_, "payload": payload}
    if idempotency_key:
        body["idempotencyKey"] = idempotency_key
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/publish",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer " + api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def main(argv):
    if len(argv) not in (5, 6) or "RT_API_KEY" not in os.environ:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    answer = publish(argv[1], os.environ["RT_API_KEY"], argv[2], argv[3], json.loads(argv[4]), argv[5] if len(argv) == 6 else None)
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
