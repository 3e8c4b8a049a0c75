//! A tiny HTTP/1.1 server on 127.0.0.1:0 for fetch tests: it records every
//! request it receives and answers by path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Server {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests to /hold wait until this is set.
    pub release: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (s2, r2) = (seen.clone(), release.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s3, r3) = (s2.clone(), r2.clone());
                std::thread::spawn(move || handle(conn, port, &s3, &r3));
            }
        });
        Server {
            port,
            seen,
            release,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn release_held(&self) {
        let (m, cv) = &*self.release;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
}

fn handle(
    conn: TcpStream,
    port: u16,
    seen: &Mutex<Vec<Seen>>,
    release: &(Mutex<bool>, std::sync::Condvar),
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let req = Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
        body,
    };
    // The authorization a request before this one sent (a server that
    // remembers credentials).
    let last_auth = seen
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|s| s.header("authorization").map(str::to_owned))
        .unwrap_or_default();
    seen.lock().unwrap().push(req.clone());
    let auth = req.header("authorization").unwrap_or("").to_string();
    let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_string();
    let to = path
        .split_once("?to=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let mut reason = None;
    let (status, ctype, extra, body): (u16, &str, String, Vec<u8>) = match path.split('?').next().unwrap_or("") {
        // The credential echoed in the reason phrase, a header value and a header name.
        "/echo-all" => {
            reason = Some(auth.clone());
            (200, "text/plain", format!("x-echo: {auth}\r\nx-{token}: named\r\n"), b"echoed".to_vec())
        }
        // A redirect to `to` followed by the token, raw or percent-encoded.
        "/bounce" => (302, "text/plain", format!("location: {to}{token}\r\n"), Vec::new()),
        "/bounce-pct" => {
            let pct: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
            (302, "text/plain", format!("location: {to}{pct}\r\n"), Vec::new())
        }
        "/multi" => (200, "text/plain", "x-multi: a\r\nx-multi: b\r\n".into(), b"two".to_vec()),
        "/landing" => (200, "text/plain", String::new(), b"landed".to_vec()),
        "/last-auth" => (200, "text/plain", String::new(), last_auth.into_bytes()),
        "/gzip" => (200, "text/plain", "content-encoding: gzip\r\n".into(), gzip(format!("gzip says {auth}").as_bytes())),
        "/deflate" => (200, "text/plain", "content-encoding: deflate\r\n".into(), zlib(format!("deflate says {auth}").as_bytes())),
        "/deflate-raw" => (200, "text/plain", "content-encoding: deflate\r\n".into(), raw_deflate(format!("raw deflate says {auth}").as_bytes())),
        // gzip over deflate: decoded in reverse order.
        "/layered" => (200, "text/plain", "content-encoding: deflate, gzip\r\n".into(), gzip(&zlib(format!("layered says {auth}").as_bytes()))),
        // Made with node: zlib.brotliCompressSync("br says sk-live-0123456789, twice: sk-live-0123456789.")
        "/br" => (200, "text/plain", "content-encoding: br\r\n".into(), BR_BODY.to_vec()),
        "/unknown-encoding" => (200, "text/plain", "content-encoding: x-custom\r\n".into(), b"as sent".to_vec()),
        // 10 MiB of zeros in about 10 KiB.
        "/gzip-bomb" => (200, "application/octet-stream", "content-encoding: gzip\r\n".into(), gzip(&vec![0; 10 * 1024 * 1024])),
        "/hello" => (200, "text/plain", "x-test: yes\r\n".into(), b"hello".to_vec()),
        "/json" => (200, "application/json", String::new(), br#"{"a":1,"list":[1,2]}"#.to_vec()),
        "/echo-auth" => (200, "text/plain", format!("x-echo: {}\r\n", req.header("authorization").unwrap_or("")), req.header("authorization").unwrap_or("").as_bytes().to_vec()),
        "/echo" => (200, "application/json", String::new(), serde_json::json!({"method": method, "body": String::from_utf8_lossy(&req.body), "ctype": req.header("content-type")}).to_string().into_bytes()),
        "/redirect" => {
            let to = path.split_once("?to=").map(|(_, t)| t.to_string()).unwrap_or_default();
            (302, "text/plain", format!("location: {to}\r\n"), Vec::new())
        }
        "/loop" => (302, "text/plain", format!("location: http://127.0.0.1:{port}/loop\r\n"), Vec::new()),
        "/big" => (200, "application/octet-stream", String::new(), vec![b'x'; 3 * 1024 * 1024]),
        "/bytes" => (200, "application/octet-stream", String::new(), vec![0xff, 0x00, 0xfe]),
        "/hold" => {
            let (m, cv) = release;
            let mut g = m.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            (200, "text/plain", String::new(), b"released".to_vec())
        }
        "/missing" => (404, "text/plain", String::new(), b"no such thing".to_vec()),
        _ => (404, "text/plain", String::new(), Vec::new()),
    };
    let reason = reason.unwrap_or_else(|| {
        match status {
            200 => "OK",
            302 => "Found",
            _ => "Not Found",
        }
        .to_string()
    });
    let mut w = conn;
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(&body);
}

const BR_BODY: &[u8] = &[
    0x1b, 0x35, 0x00, 0xf8, 0x1d, 0x87, 0xe9, 0xc6, 0x59, 0xd6, 0x9d, 0x48, 0xf2, 0x8f, 0x12, 0x44,
    0x6c, 0xce, 0x29, 0x63, 0xb1, 0xc0, 0x67, 0x52, 0x6b, 0x72, 0xb0, 0x01, 0x07, 0xee, 0x61, 0x18,
    0xea, 0x8a, 0xb7, 0x0a, 0x33, 0xc0, 0xe2, 0x0e, 0x7b, 0xa6, 0xd1, 0x4f, 0x35, 0x8f, 0xac, 0x9e,
    0x3d, 0xa8, 0xeb, 0x41, 0x00,
];

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
