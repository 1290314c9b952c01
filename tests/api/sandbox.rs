//! The gateway binary started as the README's first command starts it: sandbox mode, no
//! configuration, an empty directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A sandbox gateway started the way the README says, in `dir`.
pub struct Sandbox {
    child: Child,
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub address: String,
    /// The simulator's state URL prefix, ending in `/`.
    pub simulator: String,
}

impl Sandbox {
    /// Starts the built binary in `dir` with no configuration and waits for its announcement.
    pub fn start(dir: &Path) -> Sandbox {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"));
        command
            .current_dir(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // No configuration at all: nothing from the environment either.
        for (key, _) in std::env::vars() {
            if key.starts_with("PUHURI_GATEWAY") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().expect("the gateway binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut simulator = None;
        let mut said_sandbox = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while simulator.is_none() || !said_sandbox {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the sandbox announcement");
            if line.contains("SANDBOX MODE") {
                said_sandbox = true;
            }
            if let Some(url) = line.split("Simulator state: ").nth(1) {
                simulator = Some(url.trim().trim_end_matches("calls").to_string());
            }
        }
        Sandbox {
            child,
            address: format!("http://127.0.0.1:{port}"),
            simulator: simulator.unwrap(),
        }
    }

    /// Stops the process at once (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sandbox's ready token (`data/demo.token`).
pub fn demo_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data/demo.token"))
        .expect("the sandbox wrote its token")
        .trim()
        .to_string()
}
