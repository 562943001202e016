// http_hello: the Go peer of corio's samples/http_hello, for benchmarks/http_peers.sh.
//
// usage: http_hello [--port N] [--threads N]
//
// GOMAXPROCS is set to --threads (default 2). Listens on 127.0.0.1:--port (default 8084; 0 picks
// a free port; the backlog is the kernel's somaxconn, as Go always does), prints
// "listening on 127.0.0.1:PORT" once ready, and serves each connection in its own goroutine with
// a raw net.Conn loop (net/http would be a different shape of server: its own buffered reader and
// writer, header maps and a goroutine per connection doing much more per request). TCP_NODELAY is
// Go's default. The loop reads into a 16 KiB buffer (the size of http_hello's receive buffer,
// request_framer::buffer_bytes) and answers every complete request head (ending in "\r\n\r\n")
// with the exact bytes http_hello sends for `GET /` over HTTP/1.1 keep-alive; pipelined heads
// read together are answered in one write, from an output buffer of 4 KiB reserved per
// connection (as http_hello's). A head over 8 KiB, or a request line that is not
// "TOKEN SP ... HTTP/1.", gets 400 and the connection closes. The same shape as
// benchmarks/peers/asio_http_hello.cpp and benchmarks/tokio/http_hello. SIGTERM ends the process
// (Go's default). Accept errors (EMFILE...) back off for 10 ms.
//
// Built offline with no dependencies (benchmarks/http_peers.sh):
//
//	cd benchmarks/go && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o OUT ./http_hello
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"
)

var (
	okResponse         = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!")
	badRequestResponse = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	headEnd            = []byte("\r\n\r\n")
	httpOne            = []byte(" HTTP/1.")
)

const (
	readBufferBytes = 16384
	outReserveBytes = 4096
	maxHeadBytes    = 8192
)

// isTchar: RFC 9110 "tchar", the characters a method token may contain.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// requestLineOK: head is one complete request head; its request line must be "TOKEN SP ..." and
// contain " HTTP/1.".
func requestLineOK(head []byte) bool {
	line := head
	if i := bytes.Index(head, []byte("\r\n")); i >= 0 {
		line = head[:i]
	}
	t := 0
	for t < len(line) && isTchar(line[t]) {
		t++
	}
	if t == 0 || t >= len(line) || line[t] != ' ' {
		return false
	}
	return bytes.Contains(line[t:], httpOne)
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, readBufferBytes)
	out := make([]byte, 0, outReserveBytes)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if n == 0 || err != nil {
			return // EOF, reset: nothing more to answer
		}
		have += n
		out = out[:0]
		offset := 0
		bad := false
		for {
			pos := bytes.Index(buf[offset:have], headEnd)
			if pos < 0 {
				break
			}
			headLen := pos + len(headEnd)
			if headLen > maxHeadBytes || !requestLineOK(buf[offset:offset+headLen]) {
				bad = true
				break
			}
			out = append(out, okResponse...)
			offset += headLen
		}
		if !bad && have-offset >= maxHeadBytes {
			bad = true // an incomplete head over the limit
		}
		if bad {
			out = append(out, badRequestResponse...)
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if bad {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
		// Keep the incomplete tail (if any) at the front of the buffer.
		have = copy(buf, buf[offset:have])
	}
}

func main() {
	port := flag.Int("port", 8084, "TCP port on 127.0.0.1 (0: a free one)")
	threads := flag.Int("threads", 2, "GOMAXPROCS")
	flag.Parse()
	if *port < 0 || *port > 65535 || *threads < 1 || *threads > 1024 || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*threads)
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "http_hello: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "http_hello: accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}
