"""A test resolver: a DNS server on 127.0.0.1 (UDP) that answers A queries from a table the
test changes at run time, AAAA with no records, and other names with NXDOMAIN. It records every
question with its arrival time. `silent = True` makes it drop queries (a resolver gone away).
"""
import socket
import struct
import threading
import time


class DnsServer:
    def __init__(self, lifetime=120.0):
        self.records = {}  # lower-case name without the final dot -> [IPv4 text]
        self.silent = False
        self.queries = []  # (monotonic time, name, qtype)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.deadline = time.monotonic() + lifetime
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, *addresses):
        with self.lock:
            self.records[name.lower()] = list(addresses)

    def questions(self, name=None):
        with self.lock:
            return [q for q in self.queries if name is None or q[1] == name.lower()]

    def stop(self):
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()

    def _serve(self):
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _answer(self, data):
        qid, _flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1:
            return None
        labels, at = [], 12
        while data[at]:
            n = data[at]
            labels.append(data[at + 1:at + 1 + n].decode("ascii"))
            at += 1 + n
        qtype, _qclass = struct.unpack("!HH", data[at + 1:at + 5])
        question = data[12:at + 5]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries.append((time.monotonic(), name, qtype))
            if self.silent:
                return None
            addresses = self.records.get(name)
        if addresses is None:  # NXDOMAIN
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        if qtype == 1:
            for a in addresses:
                answers += struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(a)
                count += 1
        return struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answers
