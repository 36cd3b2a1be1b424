//! The admin endpoint as `weir tap` and `weir top` reach it: plain HTTP/1.1 GET over a blocking
//! socket (the admin endpoint speaks nothing else), with the bearer token when one is given.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where an admin endpoint is: `http://host:port` or `host:port`.
#[derive(Debug, Clone)]
pub struct Admin {
    host: String,
    token: Option<String>,
}

impl Admin {
    pub fn new(url: &str, token: Option<String>) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.starts_with("https://") || url.starts_with("https://") {
            return Err(format!("{url}: the admin endpoint serves plain HTTP"));
        }
        let host = rest.trim_end_matches('/').to_string();
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url}: expected http://host:port"));
        }
        Ok(Admin {
            host,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// Sends `GET path` and returns the response once its status and headers are in; the body is
    /// read from the returned reader.
    pub fn get(&self, path: &str, timeout: Option<Duration>) -> Result<Response, String> {
        let stream = TcpStream::connect(&self.host)
            .map_err(|e| format!("cannot reach the admin endpoint at {}: {e}", self.host))?;
        stream
            .set_read_timeout(timeout)
            .map_err(|e| e.to_string())?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: */*\r\nConnection: close\r\n\r\n",
            self.host
        );
        (&stream)
            .write_all(request.as_bytes())
            .map_err(|e| format!("{}: {e}", self.host))?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .map_err(|e| format!("{}: {e}", self.host))?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{}: not an HTTP answer: {status_line:?}", self.host))?;
        let (mut chunked, mut length) = (false, None);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                    chunked = true;
                } else if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().ok();
                }
            }
        }
        Ok(Response {
            status,
            body: Body {
                reader,
                chunked,
                left: if chunked {
                    0
                } else {
                    length.unwrap_or(u64::MAX)
                },
                done: false,
            },
        })
    }

    /// The whole body of `GET path`, which must answer 200.
    pub fn fetch(&self, path: &str) -> Result<String, String> {
        let mut r = self.get(path, Some(Duration::from_secs(5)))?;
        let mut text = String::new();
        r.body
            .read_to_string(&mut text)
            .map_err(|e| format!("{}{path}: {e}", self.host))?;
        if r.status != 200 {
            return Err(format!("{}{path}: {} {}", self.host, r.status, text.trim()));
        }
        Ok(text)
    }
}

pub struct Response {
    pub status: u16,
    pub body: Body,
}

/// A response body, de-chunked.
pub struct Body {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk (or the whole body).
    left: u64,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            if !self.chunked {
                self.done = true;
                return Ok(0);
            }
            let mut size = String::new();
            // The CRLF closing the previous chunk, then the next chunk's size line.
            while size.trim().is_empty() {
                size.clear();
                if self.reader.read_line(&mut size)? == 0 {
                    self.done = true;
                    return Ok(0);
                }
            }
            let hex = size.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(hex, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            self.done = true;
        }
        self.left -= n as u64;
        Ok(n)
    }
}
