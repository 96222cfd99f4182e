"""A loopback TCP proxy for fault tests: forwards every connection to a target and can
freeze both directions without closing anything (a half-open peer, as a dead NAT or a hung
broker looks from the worker), thaw again, or cut every connection. `limit_down(n, then)`
makes each new connection pass only n bytes from the target to the client, then cut it
("cut") or stop moving bytes ("freeze"): a download broken mid-body, at a known offset.

    with TcpProxy(("127.0.0.1", 5682)) as p:
        url = "amqp://user:pw@127.0.0.1:%d//" % p.port
        p.freeze(); ...; p.thaw()

Threads only, no third-party modules; bounded: every thread ends when the proxy closes.
"""

import select
import socket
import threading


class TcpProxy:
    def __init__(self, target, host="127.0.0.1"):
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs = []
        self._down_limit = None
        self._down_then = "cut"
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def freeze(self):
        """Stop moving bytes either way; connections stay open, new ones are accepted but
        get nothing through."""
        self._frozen.set()

    def thaw(self):
        self._frozen.clear()

    def limit_down(self, nbytes, then="cut"):
        """Connections accepted from now on carry at most nbytes from the target to the
        client, then are cut ("cut") or go silent ("freeze"); None lifts the limit."""
        assert then in ("cut", "freeze")
        self._down_limit, self._down_then = nbytes, then

    def cut(self):
        """Close every open connection (new ones are still accepted)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()
        self._thread.join(timeout=5)

    def _accept_loop(self):
        while not self._closed.is_set():
            try:
                r, _, _ = select.select([self._listener], [], [], 0.2)
                if not r:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._pairs.append((client, upstream))
            args = (client, upstream, self._down_limit, self._down_then)
            threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, a, b, down_limit=None, down_then="cut"):
        """a is the client, b the target."""
        peers = {a: b, b: a}
        down = 0
        try:
            while not self._closed.is_set():
                spent = down_limit is not None and down >= down_limit
                if self._frozen.is_set() or (spent and down_then == "freeze"):
                    self._closed.wait(0.05)
                    continue
                if spent:
                    return
                r, _, _ = select.select(list(peers), [], [], 0.1)
                for s in r:
                    if self._frozen.is_set():
                        break
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is b and down_limit is not None:
                        data = data[:max(0, down_limit - down)]
                        down += len(data)
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
