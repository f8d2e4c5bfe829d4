"""A test server that stops (cutting its open connections) and starts again on the same port,
to play an IdP going down and coming back. Subclasses set port, _closed, _deadline_timer,
_stopping, _lock, _open (accepted sockets), _server, _thread, and define _new_server()."""
import errno
import socket
import threading
import time


class RestartableServer:
    thread_name = "test-server"

    def _new_server(self):
        raise NotImplementedError

    @property
    def running(self):
        return self._server is not None

    def start(self, timeout=5.0):
        """Listens again on the same port (retrying briefly if it is still busy)."""
        if self._closed:
            raise RuntimeError(f"the {self.thread_name} was closed")
        if self._server is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                server = self._new_server()
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"{self.thread_name}-{self.port}")
        self._thread.start()

    def stop(self):
        """Stops listening and cuts every open connection; start() brings it back."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = None
        self._thread = None
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            open_socks = list(self._open)
            self._open.clear()
        for s in open_socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        thread.join(timeout=5)

    def close(self):
        self._closed = True
        self._deadline_timer.cancel()
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
