//! The database: one sqlx `Any` pool and one code path over SQLite (embedded default) and PostgreSQL
//! (scale-out). The backend is chosen once, from the URL scheme. Queries are portable SQL with `$1`
//! placeholders; each domain module owns its tables and its queries.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, Connection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::Result;

pub mod types;

pub use types::Flag;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Row = AnyRow;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite admits one writer at a time; queueing writers here (instead of in SQLite's busy handler,
    /// which sleeps) keeps commits flowing. PostgreSQL needs no such lock.
    sqlite_writer: Option<Arc<Mutex<()>>>,
}

/// A write transaction. On SQLite it also holds the process's writer lock until commit or drop.
pub struct WriteTx {
    pub tx: Tx,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The connection to run statements on: `query(..).execute(wtx.conn())`.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Connects, creating the SQLite file (and its directory) when needed, and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)
            .ok_or_else(|| crate::Error::invalid("database URL must be sqlite: or postgres://"))?;
        if backend == Backend::Sqlite {
            prepare_sqlite_file(url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            // An SQLite connection is a file handle in this process and does not drop; pinging it on
            // every acquire cost each query a second hop to its thread. A PostgreSQL connection can
            // die with the server, so it is still checked.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Deleted rows (an old wrapped identity, expired messages) are overwritten,
                        // not left in free pages.
                        sqlx::query("PRAGMA secure_delete = ON")
                            .execute(connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let store = Self {
            pool,
            backend,
            sqlite_writer: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. Its first statement takes the write lock that every
    /// write transaction takes first (the `audit_head` row): writes are serialised in one order on both
    /// backends, so none upgrades a read lock mid-transaction (SQLite) or deadlocks against another
    /// (PostgreSQL), and a check made inside the transaction holds until commit.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx {
            tx,
            _writer: writer,
        })
    }

    /// Whether the database answers (the health check).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the database file and its directory, and switches it to WAL (a persistent setting, so once
/// is enough; it needs an exclusive lock, which is why it is not a per-connection pragma).
async fn prepare_sqlite_file(url: &str) -> Result<()> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    if let Some(dir) = Path::new(options.get_filename()).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let connection = sqlx::SqliteConnection::connect_with(&options).await?;
    connection.close().await?;
    // Owner-only; SQLite gives the -wal and -shm files the database file's permissions.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        options.get_filename(),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(())
}

/// The `VALUES` list of a multi-row insert with numbered placeholders, the same on both backends:
/// `($1, $2), ($3, $4)` for two rows of two columns.
pub fn values_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let numbers: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", numbers.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(super::values_placeholders(1, 1), "($1)");
        assert_eq!(
            super::values_placeholders(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
    }
}
