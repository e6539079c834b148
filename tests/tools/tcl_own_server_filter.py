"""Log filter of tcl_own_server.sh: copies the server's stdout (a FIFO) to its
own, with Redis's " PID: <pid>" line first, written once the port listens or
when the server's output ends (a failed start). Usage: FIFO PORT PID."""

import os
import select
import socket
import sys


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def main():
    fifo, port, pid = sys.argv[1], sys.argv[2], sys.argv[3]
    # No port to watch (a command-line error test: `--port --bla`): the
    # line is written when the server's output ends.
    port = int(port) if port.isdigit() else None
    fd = os.open(fifo, os.O_RDONLY)
    os.unlink(fifo)
    out = sys.stdout.buffer
    held, announced = b"", False
    while True:
        ready, _, _ = select.select([fd], [], [], 0.02)
        data = os.read(fd, 65536) if ready else None
        if not announced and (data == b"" or (port is not None and listening(port))):
            out.write(b" PID: " + pid.encode() + b"\n" + held)
            announced, held = True, b""
        if data == b"":
            break
        if data:
            if announced:
                out.write(data)
            else:
                held += data
        out.flush()


if __name__ == "__main__":
    main()
