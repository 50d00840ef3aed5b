"""NanoGrid Python zygote: a pre-started interpreter that forks each invocation.

The runner starts it as root (with only SETUID/SETGID/KILL) and talks to it on fd 3 in
the runner's frame format. For each 'R' request, which carries the run's stdin, stdout
and stderr as file descriptors, it forks a child that becomes the sandbox user and runs
the script exactly as `python main.py` would in that workspace: __name__ == '__main__',
an absolute __file__, sys.argv, sys.path[0], cwd, environment, exit codes and
tracebacks. The function never runs in the zygote itself, so no state of one invocation
reaches another. It answers ZYGOTE_PID (pid=) when the child exists, ZYGOTE_EXIT (status=, the
raw wait status) when it ends, ZYGOTE_FAILED when it could not fork.
"""

import builtins
import os
import socket
import struct
import sys
import types

try:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
except Exception:  # pragma: no cover - an image without ctypes: the runner runs exec mode
    sys.stderr.write("zygote: ctypes is unavailable\n")
    sys.exit(3)

PR_SET_DUMPABLE = 4

# The frame letters, from runner/protocol.h (its one home; a test compares them).
FRAME_RUN = "R"
ZYGOTE_READY = "H"
ZYGOTE_PID = "P"
ZYGOTE_EXIT = "X"
ZYGOTE_FAILED = "F"

# Common standard modules, imported once here so that a function importing them does not
# pay for it. A fork gives every child its own copy: what one run changes, no other sees.
PRELOAD = (
    "argparse", "base64", "collections", "dataclasses", "datetime", "decimal", "enum", "functools",
    "hashlib", "io", "itertools", "json", "logging", "math", "pathlib", "random", "re", "string",
    "subprocess", "tempfile", "textwrap", "threading", "time", "traceback", "typing", "urllib.parse", "uuid",
)


def send(sock, kind, text=b""):
    sock.sendall(struct.pack(">IB", len(text) + 1, ord(kind)) + text)


def fields(payload):
    out = {"arg": [], "env": []}
    for item in payload.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if not eq:
            continue
        k, v = key.decode(), value.decode("utf-8", "surrogateescape")
        if k in ("arg", "env"):
            out[k].append(v)
        else:
            out[k] = v
    return out


def run_script(req):
    """In the child, as the sandbox user: `python <script> args...` in cwd."""
    argv = req["arg"][1:] or ["main.py"]
    prog = os.path.basename(req["arg"][0]) if req["arg"] else "python"
    cwd = req["cwd"]
    os.chdir(cwd)
    os.environ.clear()
    for item in req["env"]:
        k, _, v = item.partition("=")
        os.environ[k] = v
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    path = os.path.abspath(argv[0])
    sys.argv = list(argv)
    sys.orig_argv = [prog] + list(argv)
    sys.path[0] = os.path.dirname(path)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n" % (prog, path, e.errno, e.strerror))
        sys.stderr.flush()
        os._exit(2)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__loader__ = __loader__.__class__("__main__", path) if hasattr(__loader__, "path") else None
    main.__spec__ = None
    main.__package__ = None
    main.__annotations__ = {}
    sys.modules["__main__"] = main
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit as e:
        return exit_status(e)
    except BaseException as e:
        # Print the traceback as the interpreter would for the script: from its frames on.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        # None when it failed before the script ran (a syntax error): no Traceback header.
        e.__traceback__ = tb
        sys.excepthook(type(e), e, e.__traceback__)
        if isinstance(e, KeyboardInterrupt):
            import signal

            sys.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 1
    return 0


def exit_status(e):
    """What the interpreter makes of an uncaught SystemExit: its code, or its message and 1."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def finish(status):
    """Ends the child as the interpreter ends a script (non-daemon threads joined, atexit
    handlers run, std streams flushed; 120 when a flush fails), but without tearing down
    every module the zygote preloaded, which would cost a plain `python main.py` nothing."""
    try:
        import threading

        threading._shutdown()
    except Exception:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as e:
        status = exit_status(e)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception:
            status = 120
    os._exit(status)


def child(sock, req, fds):
    os.setsid()
    hold = fds[3] if len(fds) > 3 else None
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds[:3]:
        if fd > 2:
            os.close(fd)
    sock.close()
    if hold is not None:
        # Wait until the agent has moved this process into the run's own cgroup; the pipe
        # closing without a byte means the run was called off.
        go = os.read(hold, 1)
        os.close(hold)
        if go != b"g":
            os._exit(125)
    # The function goes first when the container runs out of memory, not the zygote.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    os.setgroups([])
    os.setgid(int(req["gid"]))
    os.setuid(int(req["uid"]))
    # A change of user makes a process undumpable, which hides its own /proc/self/fd from
    # it; a `python main.py` started as that user is dumpable.
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    finish(run_script(req))


def serve(sock):
    buf = b""
    fds = []
    while True:
        data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(16 * 4))
        if not data:
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack("%di" % (len(payload) // 4), payload[: len(payload) - len(payload) % 4]))
        buf += data
        while len(buf) >= 5:
            length, kind = struct.unpack(">IB", buf[:5])
            if len(buf) < 4 + length:
                break
            payload, buf = buf[5 : 4 + length], buf[4 + length :]
            if chr(kind) != FRAME_RUN or len(fds) < 3:
                continue
            req = fields(payload)
            count = 4 if req.get("hold") == "1" and len(fds) >= 4 else 3
            mine, fds = fds[:count], fds[count:]
            try:
                pid = os.fork()
            except OSError as e:
                for fd in mine:
                    os.close(fd)
                send(sock, ZYGOTE_FAILED, ("error=%s\0" % e.strerror).encode())
                continue
            if pid == 0:
                child(sock, req, mine)  # never returns: finish() ends the process
            for fd in mine:
                os.close(fd)
            send(sock, ZYGOTE_PID, ("pid=%d\0" % pid).encode())
            _, status = os.waitpid(pid, 0)
            send(sock, ZYGOTE_EXIT, ("status=%d\0" % status).encode())


def main():
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:
            pass
    # What is loaded now is shared with every child: keep the collector off those pages,
    # or each child's first collection would copy them all (copy-on-write).
    import gc

    gc.collect()
    gc.freeze()
    sock = socket.socket(fileno=3)
    send(sock, ZYGOTE_READY, b"zygote=ready\0")
    serve(sock)


if __name__ == "__main__":
    main()
