"""Clients for test/chat_sample.sh: python3 chat_client.py HOST:PORT SERVER_PID.

Checks samples/chat from the outside (see chat_sample.sh for the list), then sends SIGINT to
SERVER_PID and checks the goodbyes. Every socket has a timeout, so nothing here waits forever.
Exits non-zero (an AssertionError or a timeout) on the first thing that is not as expected.
"""
import os
import signal
import socket
import struct
import sys

host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
server_pid = int(sys.argv[2])

FLOOD = 20000  # lines sent while one client does not read
BATCH = 200  # lines per round, fewer than an outbox holds (256): the readers never fall behind
PAD = "x" * 1000  # 20 MB in all: more than the socket buffers of the slow client hold (4 MB by default)


class Client:
    def __init__(self, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(20)
        s.connect((host, port))
        self.sock = s
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def line(self):
        """The next line, without its newline; EOFError at end of stream."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("end of stream (left: %r)" % self.buf[:200])
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return text.decode()

    def expect(self, want):
        got = self.line()
        assert got == want, "expected %r, got %r" % (want, got)

    def expect_eof(self):
        chunk = self.buf or self.sock.recv(65536)
        assert chunk == b"", "expected end of stream, got %r" % chunk[:200]


def flood_line(i):
    return "flood %05d %s" % (i, PAD)


# Three clients, named in order of arrival; each one's arrival is announced to the others.
a = Client()
a.expect("* welcome, you are user1")
b = Client()
b.expect("* welcome, you are user2")
a.expect("* user2 joined")
c = Client()
c.expect("* welcome, you are user3")
a.expect("* user3 joined")
b.expect("* user3 joined")

# A line goes to every other client, not to its sender: a's next line is b's answer.
a.send("hello")
b.expect("user1: hello")
c.expect("user1: hello")
b.send("hi user1")
a.expect("user2: hi user1")
c.expect("user2: hi user1")

# /nick renames; a bad name gets an error line for its sender only.
a.send("/nick alice")
a.expect("* you are now alice")
b.expect("* user1 is now known as alice")
c.expect("* user1 is now known as alice")
a.send("hi")
b.expect("alice: hi")
c.expect("alice: hi")
error = "* error: a name is 1 to 32 printable characters without spaces"
for bad in ["/nick", "/nick ", "/nick two words", "/nick " + "n" * 33, "/nick tab\there"]:
    a.send(bad)
    a.expect(error)
a.send("/nick " + "n" * 32)
a.expect("* you are now " + "n" * 32)
a.send("/nick alice")
a.expect("* you are now alice")
b.send("still alice?")
a.expect("user2: still alice?")
long_name = "n" * 32
for other in (b, c):  # both renames, in order, and nothing of the errors
    other.expect("* alice is now known as " + long_name)
    other.expect("* " + long_name + " is now known as alice")
c.expect("user2: still alice?")

# A slow client: a small receive buffer, and it does not read while alice floods.
d = Client(rcvbuf=4096)
d.expect("* welcome, you are user4")
for other in (a, b, c):
    other.expect("* user4 joined")
for start in range(0, FLOOD, BATCH):
    for i in range(start, start + BATCH):
        a.sock.sendall((flood_line(i) + "\n").encode())
    for reader in (b, c):  # every line, in order: d never slows them down
        for i in range(start, start + BATCH):
            reader.expect("alice: " + flood_line(i))

# d drains: the lines that fitted, in order from the first, then the count of the rest.
got = 0
while True:
    text = d.line()
    if text.startswith("* ") and text.endswith(" lines dropped"):
        dropped = int(text.split()[1])
        break
    assert text == "alice: " + flood_line(got), "slow client: expected flood line %d, got %r" % (got, text[:80])
    got += 1
assert dropped > 0, "nothing was dropped for the slow client"
assert got + dropped == FLOOD, "slow client: %d lines + %d dropped != %d" % (got, dropped, FLOOD)
print("slow client: %d lines delivered, %d dropped" % (got, dropped))
a.send("after the flood")
for other in (b, c, d):
    other.expect("alice: after the flood")

# A line that is too long ends its client's connection (an error line, then end of stream).
c.sock.sendall(b"y" * 5000 + b"\n")
c.expect("* error: line too long (limit 4096 bytes); closing")
c.expect_eof()
c.sock.close()
for other in (a, b, d):
    other.expect("* user3 left")

# A connection reset by its client: reported by the server, the others go on.
e = Client()
e.expect("* welcome, you are user5")
for other in (a, b, d):
    other.expect("* user5 joined")
e.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
e.sock.close()  # a reset, not a FIN
for other in (a, b, d):
    other.expect("* user5 left")
b.send("anyone?")
a.expect("user2: anyone?")
d.expect("user2: anyone?")

# SIGINT: every client is told, then its connection ends.
os.kill(server_pid, signal.SIGINT)
for other in (a, b, d):
    other.expect("* server shutting down")
    other.expect_eof()
print("ok")
