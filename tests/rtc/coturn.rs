//! A coturn (Debian package `coturn`) on loopback for tests, started with the project's
//! turn-config/turnserver.conf, and the ICE servers of an API answer as the webrtc crate takes
//! them. Used by tests/turn.rs and tests/netcheck.rs.

use crate::common;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use teleconsult::config::Config;
use webrtc::ice_transport::ice_server::RTCIceServer;

pub const SECRET: &str = "loopback-test-turn-secret-5b1f0c";

/// A coturn process on 127.0.0.1, stopped when dropped.
pub struct Coturn {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Coturn {
    /// Starts coturn with the project's configuration, overriding what a loopback test needs:
    /// addresses, port, secret, and 127.0.0.1 allowed as a peer (the configuration denies
    /// loopback and private peers). `None` (test skipped) when coturn is not installed.
    pub fn start() -> Option<Coturn> {
        if Command::new("turnserver").arg("--version").output().is_err() {
            assert!(
                !common::services_required(),
                "TELECONSULT_REQUIRE_SERVICES is set but turnserver (Debian package coturn) is not installed"
            );
            eprintln!("skipping: turnserver (Debian package coturn) is not installed");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tc-coturn-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/turn-config/turnserver.conf");
        let log = std::fs::File::create(dir.join("turnserver.log")).unwrap();
        let child = Command::new("turnserver")
            .args(["-c", conf, "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string(), "--no-tls", "--no-dtls"])
            .arg(format!("--static-auth-secret={SECRET}"))
            .args(["--realm", "teleconsult.test", "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"])
            .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
            .args(["--log-file", "stdout"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("turnserver starts");
        let mut turn = Coturn { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = turn.child.try_wait() {
                panic!("turnserver exited with {status}:\n{}", turn.log());
            }
            assert!(Instant::now() < deadline, "turnserver never listened on {port}:\n{}", turn.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(turn)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    /// The server's TURN settings for this coturn.
    pub fn configure(&self, config: &mut Config) {
        config.turn_urls = vec![format!("turn:127.0.0.1:{}", self.port)];
        config.turn_secret = SECRET.into();
        config.turn_ttl_secs = 600;
    }

    /// Runs `turnutils_uclient`: two clients allocate relays with `username`/`password` and
    /// send each other messages through them. `Ok(messages received)` when every message sent
    /// came back through the relay, `Err(output)` otherwise.
    pub async fn relay_messages(&self, username: &str, password: &str) -> Result<u64, String> {
        let args: Vec<String> = ["-y", "-c", "-n", "5", "-m", "1", "-u", username, "-w", password, "-p"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.port.to_string(), "127.0.0.1".to_string()])
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new("turnutils_uclient")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("turnutils_uclient (package coturn) runs");
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().expect("uclient status").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = child.wait_with_output().expect("uclient output");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let count = |key: &str| -> Option<u64> {
                let at = text.rfind(&format!("{key}="))? + key.len() + 1;
                text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            };
            match (out.status.success(), count("tot_send_msgs"), count("tot_recv_msgs")) {
                (true, Some(sent), Some(received)) if sent > 0 && received == sent => Ok(received),
                _ => Err(text),
            }
        })
        .await
        .unwrap()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            return port;
        }
    }
}

/// The ICE servers of an API answer (join, network check) as the webrtc crate takes them.
pub fn rtc_ice_servers(answer: &Value) -> Vec<RTCIceServer> {
    answer["ice_servers"]
        .as_array()
        .expect("ice_servers")
        .iter()
        .map(|s| RTCIceServer {
            urls: s["urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect(),
            username: s["username"].as_str().unwrap_or_default().to_string(),
            credential: s["credential"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}
