//! `futex-trace serve` for tests: started on a free port, its address read from what it says, stopped
//! when dropped; and the smallest HTTP GET a test needs.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

/// A running `futex-trace serve`; killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
}

impl Served {
    /// Starts `futex-trace serve ARGS --listen 127.0.0.1:0` and returns it once it serves, with the
    /// rest of its stderr to read on.
    pub(crate) fn start(args: &[&str]) -> (Served, std::io::BufReader<ChildStderr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_futex-trace"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("serving http://") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "serve ended early");
        }
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_string();
        (Served { child, addr }, err)
    }

    /// As [`Served::start`], its stderr drained in the background.
    pub(crate) fn quiet(args: &[&str]) -> Served {
        let (s, mut err) = Served::start(args);
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        s
    }

    /// GET `path`: (status, body).
    pub(crate) fn get(&self, path: &str) -> (u16, Vec<u8>) {
        get(&self.addr, path, "*/*")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP GET of `path` on `addr` (HTTP/1.0, connection closed after): (status, body).
pub(crate) fn get(addr: &str, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw[end + 4..].to_vec())
}
