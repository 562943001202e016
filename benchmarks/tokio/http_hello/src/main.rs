//! tokio_http_hello: the Tokio peer of corio's samples/http_hello, for benchmarks/http_peers.sh.
//!
//! usage: tokio_http_hello [--port N] [--threads N]
//!
//! A multi-threaded Tokio runtime with `--threads` workers (default 2), I/O and time drivers on
//! (`enable_all`, as `#[tokio::main]` does). The accept loop is itself a spawned task, so all the
//! work runs on the workers (`block_on` only waits for it). Listens on 127.0.0.1:`--port` (default
//! 8083; 0 picks a free port) with a backlog of 4096 (as corio's tcp_listener and Asio's
//! max_listen_connections), prints "listening on 127.0.0.1:PORT" once ready, and serves each
//! connection in its own task: TCP_NODELAY, then an HTTP/1.1 keep-alive loop that reads into a
//! 16 KiB buffer (the size of http_hello's receive buffer, request_framer::buffer_bytes) and
//! answers every complete request head (ending in "\r\n\r\n") with the exact bytes http_hello
//! sends for `GET /` over HTTP/1.1 keep-alive; pipelined heads read together are answered in one
//! write, from an output buffer of 4 KiB reserved per connection (as http_hello's). A head over
//! 8 KiB, or a request line that is not "TOKEN SP ... HTTP/1.", gets 400 and the connection
//! closes. No hyper (Debian does not package it): the minimal loop is the same shape as
//! benchmarks/peers/asio_http_hello.cpp and benchmarks/go/http_hello. SIGTERM ends the process
//! (default action). Accept errors (EMFILE...) back off for 10 ms.

use std::process::exit;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const OK_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const BAD_REQUEST_RESPONSE: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const READ_BUFFER_BYTES: usize = 16384;
const OUT_RESERVE_BYTES: usize = 4096;
const MAX_HEAD_BYTES: usize = 8192;

/// RFC 9110 "tchar": the characters a method token may contain.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `head` is one complete request head; its request line must be "TOKEN SP ..." and contain " HTTP/1.".
fn request_line_ok(head: &[u8]) -> bool {
    let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    let token = line.iter().take_while(|&&c| is_tchar(c)).count();
    if token == 0 || token >= line.len() || line[token] != b' ' {
        return false;
    }
    line[token..].windows(8).any(|w| w == b" HTTP/1.")
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut have = 0usize; // bytes in buf
    let mut out: Vec<u8> = Vec::with_capacity(OUT_RESERVE_BYTES);
    loop {
        let n = match stream.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return, // EOF, reset: nothing more to answer
            Ok(n) => n,
        };
        have += n;
        out.clear();
        let mut offset = 0usize;
        let mut bad = false;
        while let Some(pos) = find_head_end(&buf[offset..have]) {
            let head_len = pos + 4;
            if head_len > MAX_HEAD_BYTES || !request_line_ok(&buf[offset..offset + head_len]) {
                bad = true;
                break;
            }
            out.extend_from_slice(OK_RESPONSE);
            offset += head_len;
        }
        if !bad && have - offset >= MAX_HEAD_BYTES {
            bad = true; // an incomplete head over the limit
        }
        if bad {
            out.extend_from_slice(BAD_REQUEST_RESPONSE);
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if bad {
            let _ = stream.shutdown().await;
            return;
        }
        // Keep the incomplete tail (if any) at the front of the buffer.
        buf.copy_within(offset..have, 0);
        have -= offset;
    }
}

fn usage() -> ! {
    eprintln!("usage: tokio_http_hello [--port N] [--threads N]");
    exit(2);
}

fn main() {
    let mut port: u16 = 8083;
    let mut threads: usize = 2;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage()),
            "--threads" | "--workers" => {
                threads = value.parse().unwrap_or_else(|_| usage());
                if threads == 0 || threads > 1024 {
                    usage();
                }
            }
            _ => usage(),
        }
        i += 2;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio_http_hello: runtime: {e}");
            exit(1)
        });
    let accept_loop = rt.spawn(async move {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(([127, 0, 0, 1], port).into())?;
        let listener = socket.listen(4096)?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => {
                    eprintln!("tokio_http_hello: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    match rt.block_on(accept_loop) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("tokio_http_hello: {e}");
            exit(1);
        }
        Err(e) => {
            eprintln!("tokio_http_hello: accept task: {e}");
            exit(1);
        }
    }
}
