//! The real binary on a terminal (issue #17): a pseudo-terminal from util-linux `script`
//! drives the interactive cases — the rotation's confirmation answered no and yes,
//! tables that fit a narrow terminal with a coloured STATUS column (plain when piped) —
//! and a PostgreSQL that accepts connections but never answers is named within 15 s.
//! Without `script` the terminal cases say so and skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_offerhub");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "offerhub-tty-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn clean(c: &mut Command) -> &mut Command {
    c.env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env_remove("OFFERHUB_CONFIG")
        .env_remove("OFFERHUB_LOG_FORMAT")
        .env_remove("WALLET_ENCRYPTION_KEY")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health")).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "daemon did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn have_script() -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping the terminal cases: util-linux `script` is not installed");
    }
    ok
}

/// Runs `command` (a shell line) on a pseudo-terminal of 60 columns in `dir`, feeding
/// `input`; returns (exit code, everything the terminal showed).
fn on_terminal(dir: &Path, command: &str, input: &str) -> (Option<i32>, String) {
    let line = format!("stty cols 60 rows 40; {command}");
    let mut c = Command::new("script");
    clean(&mut c)
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The text without ANSI escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn interactive_confirmation_and_terminal_tables() {
    if !have_script() {
        return;
    }
    let dir = temp_dir("confirm");
    let port = free_port();
    let mut c = Command::new(BIN);
    clean(&mut c)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _daemon = Daemon(c.spawn().unwrap());
    wait_healthy(port).await;
    let secrets = dir.join("data").join("secrets.env");
    let before = std::fs::read_to_string(&secrets).unwrap();

    // Answered "no": nothing changes.
    let (code, shown) = on_terminal(&dir, &format!("{BIN} wallet rotate-key --generate"), "n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("nothing changed"), "{shown}");
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), before);
    assert!(
        !dir.join("data").join("wallet-keys").exists()
            || std::fs::read_dir(dir.join("data").join("wallet-keys"))
                .unwrap()
                .next()
                .is_none(),
        "no key was saved"
    );

    // Answered "yes": the rotation runs, the new key is current, the old one previous.
    let (code, shown) = on_terminal(
        &dir,
        &format!("{BIN} wallet rotate-key --generate --batch 10"),
        "y",
    );
    assert_eq!(code, Some(0), "{shown}");
    let after = std::fs::read_to_string(&secrets).unwrap();
    assert_ne!(after, before);
    let old_key = before
        .lines()
        .find_map(|l| l.strip_prefix("WALLET_ENCRYPTION_KEY="))
        .unwrap();
    assert!(
        after.contains(&format!("WALLET_ENCRYPTION_KEYS_PREVIOUS={old_key}")),
        "the old key is kept as previous"
    );
    assert!(!shown.contains(old_key), "the old key is never shown");

    // A table on a 60-column terminal fits it, and its STATUS column is coloured;
    // piped, the same table has no colour.
    let master = after
        .lines()
        .find_map(|l| l.strip_prefix("OFFERHUB_MASTER_KEY="))
        .unwrap()
        .to_string();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/webhooks/endpoints"))
        .bearer_auth(&master)
        .json(&serde_json::json!({
            "url": "https://93.184.216.34/a-rather-long-path/for/the/webhook/endpoint",
            "events": ["order.*", "user.created", "withdrawal.completed"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (code, shown) = on_terminal(&dir, &format!("{BIN} webhooks list"), "");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("\u{1b}["), "coloured on a terminal: {shown}");
    let plain = strip_ansi(&shown);
    assert!(plain.contains("ACTIVE"), "{plain}");
    for line in plain.lines() {
        assert!(
            line.trim_end().chars().count() <= 60,
            "wider than the terminal: {line:?}\n{plain}"
        );
    }
    let mut c = Command::new(BIN);
    let piped = clean(&mut c)
        .args(["webhooks", "list"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(
        piped.contains("ACTIVE") && !piped.contains("\u{1b}["),
        "{piped}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PostgreSQL address that accepts connections and never answers (a hung server,
/// a firewall that swallows packets): serve stops within 15 s naming host:port, never
/// the password, and never says it listens.
#[test]
fn a_database_that_never_answers_is_named_within_seconds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s); // accepted, never answered
        }
    });
    let dir = temp_dir("hung");
    let start = Instant::now();
    let mut c = Command::new(BIN);
    let out = clean(&mut c)
        .args(["serve", "--port", &free_port().to_string()])
        .current_dir(&dir)
        .env(
            "DATABASE_URL",
            format!("postgres://u:hunter2pw@127.0.0.1:{port}/x"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}: {err}",
        start.elapsed()
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2pw"), "password echoed: {err}");
    assert!(!err.contains(" on http://"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
