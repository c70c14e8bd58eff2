//! Test infrastructure shared by every crate's tests: a fresh database per test on
//! SQLite (a temporary file) or PostgreSQL.
//!
//! PostgreSQL: when `OFFERHUB_TEST_DATABASE_URL` is set (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`), each test gets a new database on that
//! server. Otherwise the first PostgreSQL test of a process starts a throwaway cluster
//! with `initdb`/`pg_ctl` in a temporary directory (as the `postgres` user when running
//! as root, since PostgreSQL refuses root), and stops and deletes it at process exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rand::Rng;
use rand::distr::Alphanumeric;
use sqlx::Connection;

/// The two storage backends every storage test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn random_suffix() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("offerhub-tests");
            std::fs::create_dir_all(&dir).expect("create temp dir");
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("t_{}.db", random_suffix())).display()
            )
        }
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("oh_{}", random_suffix());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL {admin}: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            replace_database(&admin, &name)
        }
    }
}

fn replace_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let without_path = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{without_path}/{name}?{q}"),
        None => format!("{without_path}/{name}"),
    }
}

/// The admin URL of the test PostgreSQL server (starting a throwaway cluster once per
/// process when `OFFERHUB_TEST_DATABASE_URL` is not set).
pub fn postgres_admin_url() -> String {
    if let Ok(url) = std::env::var("OFFERHUB_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return url;
    }
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start).url.clone()
}

struct Cluster {
    url: String,
}

static CLUSTER_DIR: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();

extern "C" fn stop_cluster() {
    if let Some((bin, dir, as_postgres)) = CLUSTER_DIR.get() {
        let data = dir.join("data");
        let _ = pg_command(bin, "pg_ctl", *as_postgres)
            .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A PostgreSQL client tool (`pg_dump`, `pg_restore`, `psql`) of the installation the
/// test cluster uses (the bin directory next to `initdb`), when present.
pub fn pg_tool(name: &str) -> Option<PathBuf> {
    let bin = std::panic::catch_unwind(pg_bin_dir).ok()?;
    Some(bin.join(name)).filter(|p| p.is_file())
}

fn pg_bin_dir() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for p in std::env::split_paths(&paths) {
            let candidate = p.join("initdb");
            if candidate.is_file()
                && let Ok(real) = std::fs::canonicalize(&candidate)
                && let Some(parent) = real.parent()
            {
                return parent.to_path_buf();
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|p| p.join("initdb").is_file())
        .expect("PostgreSQL binaries (initdb, pg_ctl) not found: install PostgreSQL or set OFFERHUB_TEST_DATABASE_URL")
}

fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let exe = bin.join(tool);
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

#[allow(
    unsafe_code,
    reason = "libc::geteuid: std has no API for the effective uid"
)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

impl Cluster {
    fn start() -> Cluster {
        let bin = pg_bin_dir();
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "offerhub-pg-{}-{}",
            std::process::id(),
            random_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("create cluster dir");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown cluster dir");
            assert!(
                status.success(),
                "chown of {} to postgres failed",
                dir.display()
            );
        }
        let data = dir.join("data");
        let out = pg_command(&bin, "initdb", as_postgres)
            .args([
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = CLUSTER_DIR.set((bin.clone(), dir.clone(), as_postgres));
        #[allow(
            unsafe_code,
            reason = "libc::atexit: stop the cluster when the test binary exits"
        )]
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe {
            libc::atexit(stop_cluster);
        }
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB",
            dir.display()
        );
        let out = pg_command(&bin, "pg_ctl", as_postgres)
            .args([
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &dir.join("log").to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ])
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        }
    }
}

/// The workspace's `offerhub` binary: `OFFERHUB_BIN`, or `target/<profile>/offerhub`
/// next to the running test executable (built by `cargo test --workspace`; built here
/// when missing).
pub fn offerhub_binary() -> PathBuf {
    if let Ok(p) = std::env::var("OFFERHUB_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test>-… → target/<profile>/offerhub
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join(format!("offerhub{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace holds testkit/");
        let status = Command::new(cargo)
            .args(["build", "-p", "offerhub-cli", "--bin", "offerhub"])
            .current_dir(workspace)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the offerhub binary failed");
    }
    assert!(bin.is_file(), "no offerhub binary at {}", bin.display());
    bin
}

/// Runs `f` once per backend (SQLite, then PostgreSQL), each on a fresh database URL.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* $name:ident, $body:path) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let url = $crate::fresh_database_url($crate::Backend::Sqlite).await;
                $body(url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let url = $crate::fresh_database_url($crate::Backend::Postgres).await;
                $body(url).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database_name() {
        assert_eq!(
            super::replace_database("postgres://u@h:5/postgres", "x"),
            "postgres://u@h:5/x"
        );
        assert_eq!(
            super::replace_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
    }
}
