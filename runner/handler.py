"""NanoGrid's Python handler runtime: imports a function's handler once, then calls it per invocation.

The runner (runner/handler.c) starts it as the sandbox user in the workspace, with
NANOGRID_HANDLER=module.function, its stdout and stderr on pipes the runner keeps, and a
socket on fd 3 in the runner's frame format. It imports the module (its output, and a
failure's traceback, go to the first call's streams; a failure ends the process with
status 1), says HANDLER_READY, then answers each HANDLER_CALL with HANDLER_VALUE (the
return value as JSON) or HANDLER_ERROR (the exception's type and message, its traceback
on stderr). A SystemExit ends the process with its status, as it ends a script. Between
calls the runner keeps this process stopped.
"""

import json
import os
import socket
import struct
import sys
import time
import traceback

# The frame letters, from runner/protocol.h (a test compares them).
HANDLER_CALL = "C"
HANDLER_READY = "I"
HANDLER_VALUE = "V"
HANDLER_ERROR = "X"

# The longest answer the runner takes (protocol.h's FRAME_MAX).
FRAME_MAX = 4 * 1024 * 1024


def send(sock, kind, data=b""):
    sock.sendall(struct.pack(">IB", len(data) + 1, ord(kind)) + data)


def fields(payload):
    out = {}
    for item in payload.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq:
            out[key.decode()] = value.decode("utf-8", "surrogateescape")
    return out


class Context:
    """What Lambda's context gives a handler, under its names and NanoGrid's."""

    def __init__(self, ctx):
        self.request_id = self.aws_request_id = str(ctx.get("requestId", ""))
        self.function_id = self.function_name = str(ctx.get("functionId", ""))
        self.memory_limit_in_mb = int(ctx.get("memoryMb", 0) or 0)
        self.deadline_ms = int(ctx.get("deadlineMs", 0) or 0)

    def get_remaining_time_in_millis(self):
        return max(0, self.deadline_ms - int(time.time() * 1000))


def read_event(path):
    """The input as JSON when it parses, else as text; None without one."""
    if not path:
        return None
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def frames(sock):
    buf = b""
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        buf += data
        while len(buf) >= 5:
            length, kind = struct.unpack(">IB", buf[:5])
            if len(buf) < 4 + length:
                break
            payload, buf = buf[5 : 4 + length], buf[4 + length :]
            yield chr(kind), payload


def flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def load(spec):
    module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError("NANOGRID_HANDLER must be module.function, not %r" % spec)
    import importlib

    func = getattr(importlib.import_module(module_name), attr)
    if not callable(func):
        raise TypeError("%s is not callable" % spec)
    return func


def call(func, req):
    ctx = Context(json.loads(req.get("ctx") or "{}"))
    os.environ["NANOGRID_REQUEST_ID"] = ctx.request_id
    try:
        value = func(read_event(req.get("input")), ctx)
    except SystemExit:
        raise
    except BaseException as e:
        traceback.print_exc()
        return HANDLER_ERROR, {"errorType": type(e).__name__, "errorMessage": str(e)}
    try:
        out = json.dumps(value).encode()
    except (TypeError, ValueError) as e:
        return HANDLER_ERROR, {"errorType": "ReturnValueNotJSON", "errorMessage": str(e)}
    if len(out) >= FRAME_MAX:
        return HANDLER_ERROR, {"errorType": "ReturnValueTooLarge", "errorMessage": "the return value is %d bytes of JSON; the most is %d" % (len(out), FRAME_MAX - 1)}
    return HANDLER_VALUE, out


def main():
    sock = socket.socket(fileno=3)
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    sys.argv = [os.path.join(cwd, "handler")]
    try:
        func = load(os.environ.get("NANOGRID_HANDLER", ""))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        flush()
        os._exit(1)
    send(sock, HANDLER_READY)
    for kind, payload in frames(sock):
        if kind != HANDLER_CALL:
            continue
        os.chdir(cwd)
        try:
            answer, value = call(func, fields(payload))
        except SystemExit as e:
            flush()
            code = e.code
            os._exit(code & 0xFF if isinstance(code, int) else (0 if code is None else 1))
        flush()
        send(sock, answer, value if isinstance(value, bytes) else json.dumps(value).encode())


if __name__ == "__main__":
    main()
