#!/usr/bin/env python3
"""A non-JavaScript stock client: python-socketio (Debian's python3-socketio 5.7), default options.

It follows rooms of the gateway and survives drains and pod loss with one habit of the gateway's
protocol (docs/protocol.md): remember the last seq seen per room, and send it when joining again.
python-socketio 5.7 does not implement Socket.IO's connection state recovery (no pid/offset), so on
each (re)connect it joins its rooms with `lastSeq`; the gateway replays exactly what was missed, from
any pod (docs/stock-clients.md). Everything else -- reconnecting, backoff -- is the library's own.

    python3 examples/python/stock_client.py http://127.0.0.1:8080 chat:lobby [chat:more ...]

Prints one JSON line per thing that happened (connected, joined, message), for people and for
test/integration/python-client.test.ts. Stops when stdin closes.
"""
import json
import os
import sys
import threading

import socketio

url, rooms = sys.argv[1], sys.argv[2:]
user_id = os.environ.get("USER_ID", "python-client")
token = os.environ.get("TOKEN")  # a JWT when the gateway requires one (AUTH_MODE=jwt)

sio = socketio.Client()  # default options: reconnection on, 1 s .. 5 s randomized backoff
last_seq = {}  # room -> last seq shown: all the state the client keeps
# python-socketio 5.7 runs each event handler on its own thread, so events may reach the handlers
# out of order; they wait here until the seq before them has been shown.
waiting = {}  # room -> {seq: envelope}
lock = threading.RLock()


def say(**fields):
    with lock:
        print(json.dumps(fields), flush=True)


def show_ready(room):
    """Shows the room's waiting messages that follow its last seq, in order; drops older ones."""
    held = waiting.setdefault(room, {})
    last = last_seq.get(room)
    if last is None:
        return  # not joined yet: the join's reset or ack says where the room starts
    for seq in [s for s in held if s <= last]:
        del held[seq]  # already shown: the protocol's duplicate rule
    while last + 1 in held:
        envelope = held.pop(last + 1)
        last += 1
        say(event="message", room=room, seq=last, text=envelope["payload"]["text"])
    last_seq[room] = last


@sio.event
def connect():
    for room in rooms:
        def joined(ack, room=room):
            with lock:
                if not ack.get("ok"):
                    say(event="join_failed", room=room, error=ack.get("error"))
                    return
                last_seq.setdefault(room, ack["seq"])
                say(event="joined", room=room, seq=ack["seq"], resume=ack["resume"], replayed=ack["replayed"])
                show_ready(room)

        with lock:
            since = last_seq.get(room)
        sio.emit("room:join", {"room": room, "lastSeq": since}, callback=joined)


@sio.on("server:hello")
def hello(envelope, *offset):  # the gateway appends an offset for clients that recover; ignored here
    say(event="connected", pod=envelope["payload"]["pod"], transport=sio.transport())


@sio.on("chat:message")
def message(envelope, *offset):
    with lock:
        waiting.setdefault(envelope["room"], {})[envelope["seq"]] = envelope
        show_ready(envelope["room"])


@sio.on("room:reset")
def reset(envelope, *offset):
    # The first join, or a gap older than the room's history: the room continues from this seq.
    with lock:
        last_seq[envelope["room"]] = envelope["seq"]
        say(event="reset", room=envelope["room"], seq=envelope["seq"])
        show_ready(envelope["room"])


@sio.event
def disconnect():
    say(event="disconnected")


sio.connect(url, auth={"token": token} if token else {"userId": user_id}, wait_timeout=10)
sys.stdin.read()  # until the caller closes stdin
sio.disconnect()
