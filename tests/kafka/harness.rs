//! Runs `tierlog serve` as a real process and real Kafka clients (Python scripts in this folder,
//! run with the test venv's interpreter) against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The test venv's Python (kafka-python, confluent-kafka, aiokafka), or `$TIERLOG_PYTHON`. The
/// Kafka tests fail, never skip, without it.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TIERLOG_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/python");
    assert!(
        venv.exists(),
        "the Kafka tests need the test venv: run `bash scripts/test.sh` (it installs it), or set TIERLOG_PYTHON"
    );
    venv
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka").join(name)
}

/// Runs a client script to its end; its stdout. Panics with its stderr when it fails.
pub fn client(name: &str, args: &[&str]) -> String {
    let out = Command::new(python()).arg(script(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts a client script with its stdin and stdout piped to the caller.
pub fn spawn_client_piped(name: &str, args: &[&str]) -> Child {
    Command::new(python())
        .arg(script(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Starts a client script; the caller reads its stdout and waits.
pub fn spawn_client(name: &str, args: &[&str]) -> Child {
    Command::new(python()).arg(script(name)).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap()
}

pub fn tierlog(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tierlog")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tierlog {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A `tierlog serve` process with its Kafka listener (and HTTP) on loopback.
pub struct Broker {
    pub child: Child,
    pub kafka: String,
    pub http: String,
    pub args: Vec<String>,
}

impl Broker {
    /// `tierlog --data-dir DIR [--config CONFIG] serve`, Kafka on `kafka` (`127.0.0.1:0` for a
    /// free port).
    pub fn start(data: &Path, config: Option<&Path>, kafka: &str) -> Broker {
        let mut args = vec!["--data-dir".to_owned(), data.display().to_string()];
        if let Some(c) = config {
            args.extend(["--config".to_owned(), c.display().to_string()]);
        }
        args.extend(["serve", "--listen", "127.0.0.1:0", "--kafka-listen", kafka].map(String::from));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
            .args(&args)
            .env("RUST_LOG", std::env::var("TIERLOG_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("serve printed {first:?}: {e}"));
        Broker {
            child,
            kafka: v["kafka"].as_str().unwrap().to_owned(),
            http: v["listening"].as_str().unwrap().to_owned(),
            args,
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "tierlog serve exited with {status}");
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file in `dir` with the given TOML.
pub fn config_file(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("tierlog.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

/// One HTTP GET over a fresh connection to `addr`; the body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

/// The first offset of a partition's local log: its oldest segment file's base offset.
pub fn local_start(data: &Path, topic: &str, partition: i64) -> i64 {
    std::fs::read_dir(data.join(format!("{topic}-{partition}")))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".log")?.parse::<i64>().ok())
        .min()
        .unwrap()
}
