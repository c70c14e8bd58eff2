//! Storage: SQLite (default, embedded) or PostgreSQL, chosen by the database URL.
//!
//! One code path through `sqlx`'s `Any` driver with runtime queries; SQL is written so
//! it runs on both (`$1` placeholders, `ON CONFLICT`, `RETURNING`). The few dialect
//! differences live in [`Backend`].
//!
//! - SQLite: WAL, `busy_timeout`, foreign keys on; one writer connection whose
//!   transactions start with `BEGIN IMMEDIATE` (so a transaction never fails half-way on
//!   a lock upgrade) and are committed in groups ([`group_commit`]), plus a pool of
//!   readers; the daemon checkpoints the log off the writer's path ([`checkpoint`]).
//! - PostgreSQL: one pool; correctness comes from conditional updates and row locks.
//!
//! Every mutation runs in a [`Tx`]. Audit entries queued on it with [`Tx::audit`] and
//! events queued with [`Tx::emit`] are written at [`Tx::commit`], in the same database
//! transaction as the change they describe (numbered after commit on PostgreSQL by the
//! [`crate::sequencer`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use std::sync::Arc;

use tokio::sync::Notify;

use crate::audit::{self, AuditEntry};
use crate::config::DatabaseUrl;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::{self, NewEvent};

pub mod checkpoint;
mod group_commit;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Handle to the database: cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// PostgreSQL: connections that hold session advisory locks ([`Store::advisory_lock`]),
    /// apart from the query pool so that lock holders never starve the queries they
    /// wait on.
    locks: Option<AnyPool>,
    /// PostgreSQL: three connections for the sequencer ([`Store::begin_background`]:
    /// events passes, audit passes, the event broadcaster's reads), so its passes never
    /// queue behind requests for a connection of the query pool.
    background: Option<AnyPool>,
    /// Woken after every commit that wrote events or audit rows (the daemon's event
    /// pump, which runs the sequencer).
    events_written: Arc<Notify>,
    /// SQLite: the audit chain's head as this process last committed it
    /// ([`AuditHeadCache`]).
    audit_head: AuditHeadCache,
    /// SQLite: the writer connection's group transactions ([`group_commit`]).
    group: Option<group_commit::Writer>,
    /// SQLite with [`StoreOptions::background_checkpoints`]: the checkpointer's
    /// connection ([`checkpoint`]).
    checkpoints: Option<AnyPool>,
    /// PostgreSQL: where the sequencer's scans for unnumbered rows start
    /// ([`crate::sequencer`]).
    sequencer_floors: Arc<crate::sequencer::Floors>,
    /// Held by every clone: the checkpointer stops once the last one is dropped.
    _alive: Arc<()>,
}

/// Pool sizes and timeouts.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Maximum connections (PostgreSQL pool; SQLite reader pool).
    pub max_connections: u32,
    /// How long a caller waits for a connection (the SQLite writer queue included).
    pub acquire_timeout: Duration,
    /// SQLite: checkpoint the write-ahead log in a task of the store instead of inside
    /// the commits of the writer ([`checkpoint`]). Off by default (short-lived CLI
    /// commands keep SQLite's own checkpoints); the daemon turns it on.
    pub background_checkpoints: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(60),
            background_checkpoints: false,
        }
    }
}

impl Store {
    /// Connects (creating the SQLite file and its directory when needed). Does not
    /// migrate; call [`Store::migrate`].
    pub async fn connect(url: &DatabaseUrl) -> Result<Store> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    pub async fn connect_with(url: &DatabaseUrl, opts: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let raw = url.expose();
        if url.is_postgres() {
            let options = AnyConnectOptions::from_str(raw)
                .map_err(|e| Error::internal(format!("DATABASE_URL: {e}")))?;
            // A lock connection waits in `pg_advisory_lock` for as long as another
            // daemon holds the lock (a submission from the same Stellar account): that
            // is its job, not a slow statement worth a warning per wait.
            let lock_options = sqlx::ConnectOptions::log_slow_statements(
                options.clone(),
                log::LevelFilter::Debug,
                std::time::Duration::from_secs(1),
            );
            let locks = pool_options()
                .max_connections(opts.max_connections.saturating_mul(2).max(4))
                .min_connections(0)
                .acquire_timeout(opts.acquire_timeout)
                .connect_lazy_with(lock_options);
            let background = pool_options()
                .max_connections(3)
                .min_connections(0)
                .acquire_timeout(opts.acquire_timeout)
                .connect_lazy_with(options.clone());
            let pool = pool_options()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .after_connect(|conn, _| Box::pin(claim_shard(conn)))
                .connect_with(options)
                .await
                .map_err(|e| Error::internal(format!("cannot connect to {url}: {e}")))?;
            return Ok(Store {
                backend: Backend::Postgres,
                locks: Some(locks),
                background: Some(background),
                writer: pool.clone(),
                reader: pool,
                events_written: Arc::new(Notify::new()),
                audit_head: AuditHeadCache::default(),
                group: None,
                checkpoints: None,
                sequencer_floors: Arc::default(),
                _alive: Arc::new(()),
            });
        }
        let file = sqlite_file_path(raw);
        if let Some(path) = &file {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
                && !parent.exists()
            {
                private_dir(parent).map_err(|e| {
                    Error::internal(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            // Created 0600 before SQLite opens it: its -wal and -shm files take the
            // database file's mode.
            private_file(path)
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", path.display())))?;
        }
        let options = AnyConnectOptions::from_str(raw)
            .map_err(|e| Error::internal(format!("DATABASE_URL: {e}")))?;
        let writer = pool_options()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(if opts.background_checkpoints {
                sqlite_writer_pragmas
            } else {
                sqlite_pragmas
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::internal(format!("cannot open {url}: {e}")))?;
        let reader = pool_options()
            .max_connections(opts.max_connections.clamp(1, 8))
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(sqlite_pragmas)
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::internal(format!("cannot open {url}: {e}")))?;
        let alive = Arc::new(());
        let checkpoints = opts.background_checkpoints.then(|| {
            let pool = pool_options()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(opts.acquire_timeout)
                .after_connect(sqlite_pragmas)
                .connect_lazy_with(options);
            tokio::spawn(checkpoint::checkpointer(
                pool.clone(),
                writer.clone(),
                Arc::downgrade(&alive),
            ));
            pool
        });
        if let Some(path) = &file {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = restrict(std::path::Path::new(&p), 0o600);
            }
        }
        let (events_written, audit_head) = (Arc::new(Notify::new()), AuditHeadCache::default());
        Ok(Store {
            locks: None,
            background: None,
            backend: Backend::Sqlite,
            group: Some(group_commit::Writer::new(
                writer.clone(),
                opts.acquire_timeout,
                audit_head.clone(),
                events_written.clone(),
            )),
            writer,
            reader,
            events_written,
            audit_head,
            checkpoints,
            sequencer_floors: Arc::default(),
            _alive: alive,
        })
    }

    /// Applies the embedded migrations of this backend (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.writer).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.writer).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Pool for reads outside a transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.group {
            // SQLite: a member of the writer's group transaction ([`group_commit`]).
            Some(group) => Inner::Member(group.join().await?),
            None => Inner::Own(begin_detached(&self.writer).await?),
        };
        Ok(Tx {
            inner,
            backend: self.backend,
            audit: Vec::new(),
            events: Vec::new(),
            idempotency_record: None,
            events_written: self.events_written.clone(),
            audit_head: self.audit_head.clone(),
            next_audit_head: None,
        })
    }

    /// Pool for background reads that must not queue behind requests (the daemon's
    /// event broadcaster): the sequencer's pool on PostgreSQL, the reader pool on
    /// SQLite.
    pub fn background_reader(&self) -> &AnyPool {
        self.background.as_ref().unwrap_or(&self.reader)
    }

    /// Starts a write transaction for background bookkeeping (the sequencer): on
    /// PostgreSQL on a pool of its own, so it never waits behind requests for a
    /// connection; on SQLite on the one writer, like [`Store::begin`].
    pub async fn begin_background(&self) -> Result<Tx> {
        let Some(pool) = &self.background else {
            return self.begin().await;
        };
        Ok(Tx {
            inner: Inner::Own(begin_detached(pool).await?),
            backend: self.backend,
            audit: Vec::new(),
            events: Vec::new(),
            idempotency_record: None,
            events_written: self.events_written.clone(),
            audit_head: self.audit_head.clone(),
            next_audit_head: None,
        })
    }

    /// Starts a write transaction on behalf of a request: when the request carries an
    /// idempotency key, committing marks its record `COMMITTED` in the same transaction,
    /// so a crash before the response is stored can never lead to a second execution.
    pub async fn begin_for(&self, ctx: &Context) -> Result<Tx> {
        let mut tx = self.begin().await?;
        tx.idempotency_record = ctx.idempotency_record.clone();
        Ok(tx)
    }

    /// Where the sequencer's scans for unnumbered rows start (PostgreSQL).
    pub(crate) fn sequencer_floors(&self) -> &crate::sequencer::Floors {
        &self.sequencer_floors
    }

    /// Notified (`notify_one`, so a wake-up is never lost) after a commit in this
    /// process wrote events. One consumer: the daemon's event pump.
    pub fn events_written(&self) -> Arc<Notify> {
        self.events_written.clone()
    }

    /// `SELECT 1` through the reader pool.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Takes the database-wide lock `key` for as long as the returned guard lives:
    /// PostgreSQL session advisory lock (`pg_advisory_lock`) on a connection of its own,
    /// so daemons sharing the database exclude each other; `None` on SQLite, where one
    /// `serve` owns the file. Waits for the lock. Dropping the guard unlocks (or, when
    /// that fails, closes the session, which releases it too).
    pub async fn advisory_lock(&self, key: i64) -> Result<Option<AdvisoryLock>> {
        let Some(pool) = &self.locks else {
            return Ok(None);
        };
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_lock($1)) AS l")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(Some(AdvisoryLock {
            conn: Some(conn),
            key,
        }))
    }

    /// One `PASSIVE` checkpoint of the SQLite write-ahead log, now (what the
    /// checkpointer of [`StoreOptions::background_checkpoints`] runs); `None` on
    /// PostgreSQL.
    pub async fn checkpoint(&self) -> Result<Option<checkpoint::Checkpoint>> {
        match self.backend {
            Backend::Postgres => Ok(None),
            Backend::Sqlite => {
                let pool = self.checkpoints.as_ref().unwrap_or(&self.reader);
                checkpoint::run(&mut *pool.acquire().await?).await.map(Some)
            }
        }
    }

    /// Closes all connections (flushes the SQLite WAL on the last close).
    pub async fn close(&self) {
        if let Some(c) = &self.checkpoints {
            c.close().await;
        }
        if let Some(l) = &self.locks {
            l.close().await;
        }
        if let Some(b) = &self.background {
            b.close().await;
        }
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Per-connection SQLite settings: WAL, a 10 s busy timeout, foreign keys.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        conn.execute("PRAGMA foreign_keys = ON").await?;
        Ok(())
    })
}

/// [`sqlite_pragmas`] for the writer of a store whose WAL is checkpointed in the
/// background ([`checkpoint`]): automatic checkpoints inside its commits only as a
/// backstop, for a log [`checkpoint::WRITER_BACKSTOP_FRAMES`] pages long.
fn sqlite_writer_pragmas(
    conn: &mut sqlx::AnyConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        sqlite_pragmas(conn, meta).await?;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "PRAGMA wal_autocheckpoint = {}",
            checkpoint::WRITER_BACKSTOP_FRAMES
        )))
        .await?;
        Ok(())
    })
}

/// Begins a transaction on a PostgreSQL `pool` in a task of its own. sqlx 0.9 queues
/// no ROLLBACK when the future is dropped while `BEGIN` is in flight (a request whose
/// client hangs up): it counts the transaction only once the server has answered, so
/// the connection would go back to the pool inside a transaction sqlx does not know
/// about, and whatever ran on it next would run, uncommitted, in that transaction. The
/// task always finishes; a transaction nobody takes is dropped and rolls back. (The
/// connection is acquired in the task too: sqlx's public API begins an owned
/// transaction only from the pool; a cancelled caller's task still waits its turn,
/// bounded by the pool's acquire timeout.)
async fn begin_detached(pool: &AnyPool) -> Result<Transaction<'static, Any>> {
    let pool = pool.clone();
    let tx = tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| Error::internal(format!("transaction start task failed: {e}")))??;
    Ok(tx)
}

/// The advisory-lock namespace of the shard slots ([`claim_shard`]); the two-key form,
/// so it never meets the single-key locks taken elsewhere.
const SHARD_SLOT_LOCKS: i32 = 0x4f48_5348;

/// PostgreSQL, on every new connection of the main pool: claims the first shard slot
/// (`0..SHARDS`) no other session holds, with a session advisory lock kept until the
/// connection closes, and records it in the session setting `offerhub.shard` that
/// [`crate::ledger::SESSION_SHARD`] reads. Sessions on one shard row would take turns
/// on it (measured with two daemons: most row-lock waits were on shard rows, their
/// `pg_backend_pid() % 64` being equal). None free: the setting stays empty and the
/// session uses its pid's shard. (No `ORDER BY`: the series is read in order and the
/// scan stops at the first lock taken — a sort would try, and take, every slot.)
async fn claim_shard(conn: &mut sqlx::AnyConnection) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('offerhub.shard', COALESCE(CAST(( \
             SELECT s FROM generate_series(0, {}) AS s \
             WHERE pg_try_advisory_lock({SHARD_SLOT_LOCKS}, s) LIMIT 1) AS TEXT), ''), \
           false)",
        crate::ledger::SHARDS - 1
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// A connection that sat idle at least this long is pinged before a caller gets it.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Pool options shared by every pool: sqlx pings each connection on every acquire by
/// default, one round trip more per transaction (on SQLite, one more trip to the one
/// writer's thread while it is held). Only a connection idle for [`PING_IF_IDLE_FOR`]
/// is pinged here (a dead one is dropped and another opened, as sqlx does): one in
/// steady use has just proven itself alive.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// `$1, $2, …, $count`: the numbered placeholders of an `IN (…)` list whose values are
/// bound in order (both backends read `$n`).
pub fn placeholders(count: usize) -> String {
    (1..=count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates `dir` (and missing parents) readable by the owner only (0700 on Unix), or
/// restricts it to 0700 when it exists: the data directory holds the database, the
/// generated secrets and the sandbox state.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

/// Creates `path` empty with mode 0600 when it does not exist, and restricts an
/// existing one to 0600.
pub fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?;
    restrict(path, 0o600)
}

/// Sets `mode` on an existing file or directory (no-op off Unix or when missing).
fn restrict(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o777 != mode => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The file behind a `sqlite:` URL, when it names one (not `:memory:`).
fn sqlite_file_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Appends `rows` tuples of `width` numbered placeholders (`($1, …), ($n, …)`), each
/// followed by `extra` inside the parentheses.
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, width: usize, extra: &str) {
    push_placeholders_from(sql, 1, rows, width, extra);
}

/// [`push_placeholders`] numbered from `$first`.
pub(crate) fn push_placeholders_from(
    sql: &mut String,
    first: usize,
    rows: usize,
    width: usize,
    extra: &str,
) {
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..width {
            if j > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", first + i * width + j));
        }
        sql.push_str(extra);
        sql.push(')');
    }
}

/// A held [`Store::advisory_lock`].
pub struct AdvisoryLock {
    conn: Option<sqlx::pool::PoolConnection<Any>>,
    key: i64,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let key = self.key;
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    let unlocked = sqlx::query(
                        "SELECT 1 AS unlocked FROM (SELECT pg_advisory_unlock($1)) AS u",
                    )
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await;
                    if unlocked.is_err() {
                        // Ending the session releases every lock it holds.
                        drop(conn.detach());
                    }
                });
            }
            Err(_) => drop(conn.detach()),
        }
    }
}

/// SQLite: the audit chain's head (`last_seq`, `last_hash`) as this process last
/// committed it, so appending audit rows needs no read of `audit_head` first (one call
/// fewer on the one writer). Only a successful commit sets it; a failed one clears it.
/// Another process appending to the chain (the CLI) cannot be missed: rows numbered
/// from a stale head collide with its rows on `audit_logs.seq`, and
/// [`audit::append_with_events`] then reads the head and chains again.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditHeadCache(Arc<std::sync::Mutex<Option<(i64, String)>>>);

impl AuditHeadCache {
    /// The cached head, if any.
    pub(crate) fn get(&self) -> Option<(i64, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the cached head (`None`: read it from the database next time).
    pub(crate) fn set(&self, head: Option<(i64, String)>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = head;
    }
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx {
    inner: Inner,
    backend: Backend,
    audit: Vec<AuditEntry>,
    events: Vec<NewEvent>,
    idempotency_record: Option<String>,
    events_written: Arc<Notify>,
    audit_head: AuditHeadCache,
    /// SQLite: the audit chain's head once this transaction commits (set by
    /// [`audit::append_with_events`]), for [`AuditHeadCache`].
    pub(crate) next_audit_head: Option<(i64, String)>,
}

/// The database transaction of a [`Tx`].
enum Inner {
    /// PostgreSQL: a transaction of its own.
    Own(Transaction<'static, Any>),
    /// SQLite: a member of the writer's group transaction.
    Member(group_commit::Member),
}

impl Tx {
    /// The process's [`AuditHeadCache`].
    pub(crate) fn audit_head_cache(&self) -> &AuditHeadCache {
        &self.audit_head
    }

    /// SQLite: the audit chain's head to append after (the group's, else the cached
    /// committed one; `None`: read it from the database).
    pub(crate) fn audit_head_hint(&self) -> Option<(i64, String)> {
        match &self.inner {
            Inner::Member(m) => m.audit_head(),
            Inner::Own(_) => self.audit_head.get(),
        }
    }

    /// The connection, for queries inside this transaction.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.inner {
            Inner::Own(tx) => tx,
            Inner::Member(m) => m.conn(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rolls back now (dropping a `Tx` rolls back too, when its connection is next used).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            Inner::Own(tx) => tx.rollback().await?,
            Inner::Member(m) => m.rollback().await?,
        }
        Ok(())
    }

    /// Queues an audit row; it is chained and written at commit.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }

    /// Queues a domain event; it gets its id and sequence number at commit.
    pub fn emit(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Writes the queued audit rows and events (one statement each; on PostgreSQL
    /// unnumbered, so this transaction locks nothing other writers need — the
    /// [`crate::sequencer`] numbers them after commit), marks the request's idempotency
    /// record committed, and commits.
    pub async fn commit(mut self) -> Result<()> {
        let wrote_events = !self.events.is_empty() || !self.audit.is_empty();
        let entries = std::mem::take(&mut self.audit);
        let events = std::mem::take(&mut self.events);
        if self.backend == Backend::Postgres && !entries.is_empty() && !events.is_empty() {
            // One statement (one round trip) for both.
            let rows = audit::prepare(entries);
            let mut sql = String::from("WITH a AS (");
            audit::push_insert_pg(&mut sql, rows.len());
            sql.push_str(") ");
            events::push_insert(
                &mut sql,
                Backend::Postgres,
                1 + rows.len() * 11,
                events.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in rows {
                q = r.bind_content(q);
            }
            q = events::bind_all(q, events);
            q.execute(self.conn()).await?;
        } else {
            audit::append_with_events(&mut self, entries, events).await?;
        }
        if let Some(record) = self.idempotency_record.take() {
            sqlx::query(
                "UPDATE idempotency_keys SET state = $2 WHERE scope_hash = $1 AND state = $3",
            )
            .bind(record)
            .bind(crate::domain::idempotency::KeyState::Committed)
            .bind(crate::domain::idempotency::KeyState::InProgress)
            .execute(self.conn())
            .await?;
        }
        let inner = match self.inner {
            Inner::Own(tx) => tx,
            Inner::Member(m) => return m.commit(wrote_events, self.next_audit_head).await,
        };
        let notify = self.events_written.clone();
        // In a task of its own: once COMMIT is sent, a caller that goes away (a client
        // hanging up) does not leave sqlx to queue a ROLLBACK behind it, and the event
        // pump still hears of the commit.
        let (cache, next_head) = (self.audit_head, self.next_audit_head);
        tokio::spawn(async move {
            let committed = inner.commit().await;
            if let Some(head) = next_head {
                // The chain's head as committed; unknown after a failed COMMIT.
                cache.set(committed.is_ok().then_some(head));
            }
            committed?;
            if wrote_events {
                notify.notify_one();
            }
            Ok::<(), sqlx::Error>(())
        })
        .await
        .map_err(|e| Error::internal(format!("commit task failed: {e}")))??;
        Ok(())
    }
}

/// A query assembled from optional parts (filters, cursors) with numbered placeholders
/// (`$1`, `$2`, …), which both backends accept. `sqlx::QueryBuilder` writes the `Any`
/// driver's placeholders as `?`, which PostgreSQL refuses; this is its portable
/// equivalent. Text given to [`Select::push`] must be trusted SQL (column names chosen
/// by code, never user input); values go through [`Select::push_bind`].
#[derive(Default)]
pub struct Select {
    sql: String,
    args: sqlx::any::AnyArguments,
    bound: usize,
    error: Option<sqlx::error::BoxDynError>,
}

impl Select {
    /// Starts with `sql` (e.g. `SELECT … FROM t WHERE 1 = 1`).
    pub fn new(sql: impl Into<String>) -> Self {
        Select {
            sql: sql.into(),
            ..Select::default()
        }
    }

    /// Appends trusted SQL text.
    pub fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Appends the next placeholder (`$n`) and binds `value` to it.
    pub fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'t, Any> + sqlx::Type<Any>,
    {
        use sqlx::Arguments;
        if let Err(e) = self.args.add(value)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self.bound += 1;
        let n = self.bound;
        self.push(format_args!("${n}"))
    }

    /// `AND {column} = $n` when `value` is given.
    pub fn and_eq<'t, T>(&mut self, column: &str, value: Option<T>) -> &mut Self
    where
        T: sqlx::Encode<'t, Any> + sqlx::Type<Any>,
    {
        if let Some(v) = value {
            self.push(format_args!(" AND {column} = "));
            self.push_bind(v);
        }
        self
    }

    /// The query, ready to run; an error when a value could not be encoded.
    pub fn build(self) -> Result<sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>> {
        if let Some(e) = self.error {
            return Err(Error::internal(format!("query argument: {e}")));
        }
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args))
    }
}
