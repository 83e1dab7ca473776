//! Managed databases: the engines Berth runs, how each one is configured through its official image's
//! environment, its connection string, and the commands (run inside the database's own container) that check it,
//! back it up and restore it. Pure: no I/O.
//!
//! Every command reads credentials from the container's own environment (`$POSTGRES_PASSWORD`, …), so Berth
//! never puts a password on an exec command line or in a log.

use super::validate::Invalid;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

/// The database engines Berth manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Postgresql,
    Mysql,
    Redis,
    Mongo,
}

/// Every engine, for listings and tests.
pub const KINDS: [DatabaseKind; 4] =
    [DatabaseKind::Postgresql, DatabaseKind::Mysql, DatabaseKind::Redis, DatabaseKind::Mongo];

impl DatabaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => "postgresql",
            DatabaseKind::Mysql => "mysql",
            DatabaseKind::Redis => "redis",
            DatabaseKind::Mongo => "mongo",
        }
    }

    /// Parses the API's `type`; the error lists the accepted values.
    pub fn parse(field: &'static str, s: &str) -> Result<DatabaseKind, Invalid> {
        KINDS.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Invalid::new(field, format!("'{s}' is not a database type; use postgresql, mysql, redis or mongo"))
        })
    }

    /// The version used when a create request names none (the official images' current major line).
    pub fn default_version(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => "16",
            DatabaseKind::Mysql => "8.4",
            DatabaseKind::Redis => "7",
            DatabaseKind::Mongo => "7",
        }
    }

    /// The port the engine listens on inside its container.
    pub fn port(self) -> u16 {
        match self {
            DatabaseKind::Postgresql => 5432,
            DatabaseKind::Mysql => 3306,
            DatabaseKind::Redis => 6379,
            DatabaseKind::Mongo => 27017,
        }
    }

    /// Where the official image keeps its data; the database's named volume is mounted there.
    pub fn data_dir(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => "/var/lib/postgresql/data",
            DatabaseKind::Mysql => "/var/lib/mysql",
            DatabaseKind::Redis => "/data",
            DatabaseKind::Mongo => "/data/db",
        }
    }

    /// The env var `attach` sets when the request names none.
    pub fn default_env_key(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql | DatabaseKind::Mysql => "DATABASE_URL",
            DatabaseKind::Redis => "REDIS_URL",
            DatabaseKind::Mongo => "MONGO_URL",
        }
    }

    /// The login Berth creates (Redis has only its `default` user).
    pub fn username(self) -> &'static str {
        match self {
            DatabaseKind::Redis => "default",
            _ => "berth",
        }
    }

    /// Whether the engine has named databases (Redis uses database 0).
    pub fn has_database_name(self) -> bool {
        self != DatabaseKind::Redis
    }

    /// The file name ending of a backup (before `.gz`).
    pub fn backup_extension(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => "dump",
            DatabaseKind::Mysql => "sql",
            DatabaseKind::Redis => "rdb",
            DatabaseKind::Mongo => "archive",
        }
    }

    /// The official image's environment contract: credentials and the database to create on first start.
    /// `admin_password` is MySQL's root password (kept apart from the application user's).
    pub fn container_env(self, c: &Credentials) -> Vec<String> {
        match self {
            DatabaseKind::Postgresql => vec![
                format!("POSTGRES_USER={}", c.username),
                format!("POSTGRES_PASSWORD={}", c.password),
                format!("POSTGRES_DB={}", c.database_name),
            ],
            DatabaseKind::Mysql => vec![
                format!("MYSQL_ROOT_PASSWORD={}", c.admin_password),
                format!("MYSQL_USER={}", c.username),
                format!("MYSQL_PASSWORD={}", c.password),
                format!("MYSQL_DATABASE={}", c.database_name),
            ],
            DatabaseKind::Redis => vec![format!("REDIS_PASSWORD={}", c.password)],
            DatabaseKind::Mongo => vec![
                format!("MONGO_INITDB_ROOT_USERNAME={}", c.username),
                format!("MONGO_INITDB_ROOT_PASSWORD={}", c.password),
                format!("MONGO_INITDB_DATABASE={}", c.database_name),
            ],
        }
    }

    /// The command that replaces the image's, when the engine is configured through it: Redis takes its password
    /// and persistence (append-only file, plus RDB snapshots) on the command line, allows `DEBUG RELOAD` from
    /// inside its container only, which restores use, and sends a snapshot to `redis-cli --rdb` (backups) at
    /// once instead of waiting 5 s for more replicas.
    pub fn container_cmd(self, c: &Credentials) -> Option<Vec<String>> {
        match self {
            DatabaseKind::Redis => Some(
                [
                    "redis-server",
                    "--requirepass",
                    c.password.as_str(),
                    "--appendonly",
                    "yes",
                    "--enable-debug-command",
                    "local",
                    "--repl-diskless-sync-delay",
                    "0",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            _ => None,
        }
    }

    /// The engine's standard URL for reaching it at `host:port`.
    pub fn connection_string(self, c: &Credentials, host: &str, port: u16) -> String {
        let (user, pw, db) = (&c.username, &c.password, &c.database_name);
        match self {
            DatabaseKind::Postgresql => format!("postgresql://{user}:{pw}@{host}:{port}/{db}"),
            DatabaseKind::Mysql => format!("mysql://{user}:{pw}@{host}:{port}/{db}"),
            DatabaseKind::Redis => format!("redis://{user}:{pw}@{host}:{port}/0"),
            DatabaseKind::Mongo => format!("mongodb://{user}:{pw}@{host}:{port}/{db}?authSource=admin"),
        }
    }

    /// A `sh -c` script that exits 0 once the engine accepts authenticated connections over TCP (so the
    /// official images' temporary, socket-only first-start servers do not count).
    pub fn ready_script(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => {
                r#"PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atqc 'SELECT 1' >/dev/null"#
            }
            DatabaseKind::Mysql => {
                r#"MYSQL_PWD="$MYSQL_ROOT_PASSWORD" "$(command -v mysql || command -v mariadb)" --protocol=tcp -h 127.0.0.1 -uroot -e 'SELECT 1' "$MYSQL_DATABASE" >/dev/null"#
            }
            DatabaseKind::Redis => r#"REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 ping | grep -q PONG"#,
            DatabaseKind::Mongo => {
                r#"mongosh --quiet --host 127.0.0.1 -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin --eval 'db.adminCommand({ping: 1}).ok' | grep -q 1"#
            }
        }
    }

    /// A `sh -c` script writing a consistent backup to stdout with the engine's own tool: `pg_dump` custom format,
    /// `mysqldump --single-transaction`, a Redis RDB snapshot, `mongodump --archive`.
    pub fn backup_script(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => {
                r#"PGPASSWORD="$POSTGRES_PASSWORD" exec pg_dump --format=custom -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB""#
            }
            DatabaseKind::Mysql => {
                r#"MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec "$(command -v mysqldump || command -v mariadb-dump)" --single-transaction --routines --triggers --hex-blob --protocol=tcp -h 127.0.0.1 -uroot "$MYSQL_DATABASE""#
            }
            DatabaseKind::Redis => {
                r#"set -e
f=/tmp/berth-backup-$$.rdb
REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 --rdb "$f" >&2
cat "$f"
rm -f "$f""#
            }
            DatabaseKind::Mongo => {
                r#"set -e
umask 077
f=/tmp/berth-mongo-$$.yaml
printf 'password: "%s"\n' "$MONGO_INITDB_ROOT_PASSWORD" >"$f"
mongodump --quiet --archive --host 127.0.0.1 --username "$MONGO_INITDB_ROOT_USERNAME" --config "$f" --authenticationDatabase admin --db "$MONGO_INITDB_DATABASE"
rm -f "$f""#
            }
        }
    }

    /// A `sh -c` script reading a backup made by [`DatabaseKind::backup_script`] on stdin and replacing the
    /// database's contents with it. Objects that are not in the backup but exist now are kept (PostgreSQL and
    /// MySQL replace the tables the backup has; Redis and MongoDB replace the whole dataset / database).
    pub fn restore_script(self) -> &'static str {
        match self {
            DatabaseKind::Postgresql => {
                r#"PGPASSWORD="$POSTGRES_PASSWORD" exec pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB""#
            }
            DatabaseKind::Mysql => {
                r#"MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec "$(command -v mysql || command -v mariadb)" --protocol=tcp -h 127.0.0.1 -uroot "$MYSQL_DATABASE""#
            }
            DatabaseKind::Redis => {
                r#"set -e
export REDISCLI_AUTH="$REDIS_PASSWORD"
dir=$(redis-cli -h 127.0.0.1 --raw CONFIG GET dir | sed -n 2p)
file=$(redis-cli -h 127.0.0.1 --raw CONFIG GET dbfilename | sed -n 2p)
cat >"$dir/.berth-restore.rdb"
chmod 644 "$dir/.berth-restore.rdb"
mv "$dir/.berth-restore.rdb" "$dir/$file"
redis-cli -h 127.0.0.1 DEBUG RELOAD NOSAVE | grep -q OK
if redis-cli -h 127.0.0.1 --raw CONFIG GET appendonly | grep -q yes; then
    redis-cli -h 127.0.0.1 BGREWRITEAOF >/dev/null
    i=0
    while redis-cli -h 127.0.0.1 INFO persistence | grep -q 'aof_rewrite_in_progress:1'; do
        i=$((i + 1)); [ "$i" -lt 600 ] || { echo 'AOF rewrite did not finish' >&2; exit 1; }
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 INFO persistence | grep -q 'aof_last_bgrewrite_status:ok'
fi"#
            }
            DatabaseKind::Mongo => {
                r#"set -e
umask 077
f=/tmp/berth-mongo-$$.yaml
printf 'password: "%s"\n' "$MONGO_INITDB_ROOT_PASSWORD" >"$f"
mongorestore --quiet --archive --drop --host 127.0.0.1 --username "$MONGO_INITDB_ROOT_USERNAME" --config "$f" --authenticationDatabase admin --nsInclude "$MONGO_INITDB_DATABASE.*"
rm -f "$f""#
            }
        }
    }
}

/// What an application needs to log in. Lives only in memory; stored sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// MySQL's root password; other engines leave it equal to `password`.
    pub admin_password: String,
    pub database_name: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("database_name", &self.database_name)
            .finish_non_exhaustive()
    }
}

/// A database name: a slug (lowercase letters, digits, '-'), 1–40 characters. It names the container, the
/// host name (`<name>.db`) and, with '-' as '_', the engine's database.
pub fn validate_database_name(field: &'static str, name: &str) -> Result<String, Invalid> {
    super::Slug::parse(name).map(|s| s.as_str().to_owned()).map_err(|m| Invalid::new(field, m))
}

/// The engine's database name for a Berth database name (`my-app` → `my_app`), safe unquoted in every engine.
pub fn engine_database_name(name: &str) -> String {
    let n = name.replace('-', "_");
    if n.starts_with(|c: char| c.is_ascii_digit()) { format!("db_{n}") } else { n }
}

/// A version: what goes into the image tag (`16`, `8.4`, `7.2-alpine`).
pub fn validate_version(field: &'static str, version: &str) -> Result<String, Invalid> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && version.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(version.to_owned())
    } else {
        Err(Invalid::new(field, format!("'{version}' is not an image tag like 16, 8.4 or 7.2-alpine")))
    }
}

/// The image for `version` from a configured template: `{version}` is replaced; a template without it is used
/// as it is (a pinned local image).
pub fn image_for(template: &str, version: &str) -> String {
    template.replace("{version}", version)
}

/// Whether the container is running what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseStatus {
    /// The container runs and the engine answered its readiness check.
    Running,
    /// The container runs; the engine is still starting (or stopped answering).
    Starting,
    /// Stopped on request; the volume keeps the data.
    Stopped,
    /// The engine restarts it after a crash.
    Restarting,
    /// Should run but does not (it exited, or its container is gone); `start` runs it again.
    Failed,
}

impl DatabaseStatus {
    /// The word the API uses, for pages that show it as text.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseStatus::Running => "running",
            DatabaseStatus::Starting => "starting",
            DatabaseStatus::Stopped => "stopped",
            DatabaseStatus::Restarting => "restarting",
            DatabaseStatus::Failed => "failed",
        }
    }
}

/// Why a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupTrigger {
    /// `POST …/backups`.
    Manual,
    /// The database's schedule; only these are pruned by `retain`.
    Schedule,
    /// Taken automatically before a restore overwrote the database.
    PreRestore,
}

impl BackupTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupTrigger::Manual => "manual",
            BackupTrigger::Schedule => "schedule",
            BackupTrigger::PreRestore => "pre_restore",
        }
    }

    pub fn parse(s: &str) -> Option<BackupTrigger> {
        [BackupTrigger::Manual, BackupTrigger::Schedule, BackupTrigger::PreRestore]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// Where a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Running,
    Succeeded,
    /// `error` says why; nothing was kept.
    Failed,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Running => "running",
            BackupStatus::Succeeded => "succeeded",
            BackupStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<BackupStatus> {
        [BackupStatus::Running, BackupStatus::Succeeded, BackupStatus::Failed].into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a backup's copy in the S3-compatible target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemoteStatus {
    /// Queued or in progress (resumed after a restart).
    Uploading,
    Uploaded,
    /// `error` says why; the local file is unaffected.
    Failed,
}

impl RemoteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteStatus::Uploading => "uploading",
            RemoteStatus::Uploaded => "uploaded",
            RemoteStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RemoteStatus> {
        [RemoteStatus::Uploading, RemoteStatus::Uploaded, RemoteStatus::Failed].into_iter().find(|t| t.as_str() == s)
    }
}

/// Most backups a schedule may keep.
pub const MAX_RETAIN: u32 = 1000;

/// A backup schedule: a cron expression (5 fields, or 6 with seconds first; UTC) and how many scheduled
/// backups to keep.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: String,
    pub retain: u32,
    parsed: croner::Cron,
}

impl Schedule {
    /// Validates both fields; errors name `cron` or `retain`.
    pub fn parse(cron: &str, retain: u32) -> Result<Schedule, Invalid> {
        let cron = cron.trim();
        let parsed = croner::Cron::from_str(cron).map_err(|e| {
            Invalid::new("cron", format!("'{cron}' is not a cron expression like \"0 3 * * *\" (UTC): {e}"))
        })?;
        if !(1..=MAX_RETAIN).contains(&retain) {
            return Err(Invalid::new("retain", format!("must be from 1 to {MAX_RETAIN}")));
        }
        Ok(Schedule { cron: cron.to_owned(), retain, parsed })
    }

    /// The first time after `after` the schedule fires.
    pub fn next_after(&self, after: super::Timestamp) -> Option<super::Timestamp> {
        self.parsed.find_next_occurrence(&after.0, false).ok().map(super::Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "berth".into(),
            password: "pw123".into(),
            admin_password: "root456".into(),
            database_name: "shop".into(),
        }
    }

    #[test]
    fn connection_strings_use_each_engines_url_form() {
        let c = creds();
        assert_eq!(
            DatabaseKind::Postgresql.connection_string(&c, "shop.db", 5432),
            "postgresql://berth:pw123@shop.db:5432/shop"
        );
        assert_eq!(DatabaseKind::Mysql.connection_string(&c, "h", 3306), "mysql://berth:pw123@h:3306/shop");
        let r = Credentials { username: "default".into(), ..c.clone() };
        assert_eq!(DatabaseKind::Redis.connection_string(&r, "h", 6379), "redis://default:pw123@h:6379/0");
        assert_eq!(
            DatabaseKind::Mongo.connection_string(&c, "h", 27017),
            "mongodb://berth:pw123@h:27017/shop?authSource=admin"
        );
    }

    #[test]
    fn container_env_follows_the_official_images() {
        let c = creds();
        let pg = DatabaseKind::Postgresql.container_env(&c);
        assert!(pg.contains(&"POSTGRES_PASSWORD=pw123".to_owned()) && pg.contains(&"POSTGRES_DB=shop".to_owned()));
        let my = DatabaseKind::Mysql.container_env(&c);
        assert!(my.contains(&"MYSQL_ROOT_PASSWORD=root456".to_owned()));
        assert!(my.contains(&"MYSQL_USER=berth".to_owned()) && my.contains(&"MYSQL_PASSWORD=pw123".to_owned()));
        let mongo = DatabaseKind::Mongo.container_env(&c);
        assert_eq!(
            mongo,
            vec![
                "MONGO_INITDB_ROOT_USERNAME=berth".to_owned(),
                "MONGO_INITDB_ROOT_PASSWORD=pw123".to_owned(),
                "MONGO_INITDB_DATABASE=shop".to_owned()
            ]
        );
        let cmd = DatabaseKind::Redis.container_cmd(&c).unwrap();
        assert_eq!(&cmd[..3], &["redis-server".to_owned(), "--requirepass".to_owned(), "pw123".to_owned()]);
        assert!(DatabaseKind::Postgresql.container_cmd(&c).is_none());
    }

    #[test]
    fn scripts_never_carry_a_password_and_use_the_engines_tools() {
        for kind in KINDS {
            for script in [kind.ready_script(), kind.backup_script(), kind.restore_script()] {
                assert!(!script.contains("pw123"), "{script}");
            }
        }
        assert!(DatabaseKind::Postgresql.backup_script().contains("pg_dump --format=custom"));
        assert!(DatabaseKind::Mysql.backup_script().contains("--single-transaction"));
        assert!(DatabaseKind::Redis.backup_script().contains("--rdb"));
        assert!(DatabaseKind::Redis.restore_script().contains("DEBUG RELOAD NOSAVE"));
        assert!(DatabaseKind::Redis.restore_script().contains("BGREWRITEAOF"));
    }

    #[test]
    fn mongo_commands_use_mongodump_and_mongorestore_archives_with_the_password_in_a_private_file() {
        let b = DatabaseKind::Mongo.backup_script();
        assert!(b.contains("mongodump --quiet --archive"), "{b}");
        assert!(b.contains("--config \"$f\"") && b.contains("umask 077") && b.contains("rm -f \"$f\""), "{b}");
        assert!(b.contains("--db \"$MONGO_INITDB_DATABASE\""), "{b}");
        let r = DatabaseKind::Mongo.restore_script();
        assert!(r.contains("mongorestore --quiet --archive --drop"), "{r}");
        assert!(r.contains("--nsInclude \"$MONGO_INITDB_DATABASE.*\""), "{r}");
        assert!(DatabaseKind::Mongo.ready_script().contains("mongosh"));
        assert_eq!(DatabaseKind::Mongo.data_dir(), "/data/db");
        assert_eq!((DatabaseKind::Mongo.port(), DatabaseKind::Mongo.default_env_key()), (27017, "MONGO_URL"));
    }

    #[test]
    fn names_versions_and_images() {
        assert_eq!(validate_database_name("name", "shop-db").unwrap(), "shop-db");
        assert_eq!(validate_database_name("name", "Shop").unwrap_err().field, "name");
        assert_eq!(engine_database_name("shop-db"), "shop_db");
        assert_eq!(engine_database_name("1st"), "db_1st");
        assert!(validate_version("version", "8.4").is_ok());
        assert!(validate_version("version", "7.2-alpine").is_ok());
        assert_eq!(validate_version("version", "16;rm").unwrap_err().field, "version");
        assert_eq!(image_for("postgres:{version}", "16"), "postgres:16");
        assert_eq!(image_for("local/pg:test", "16"), "local/pg:test");
        assert_eq!(DatabaseKind::parse("type", "mongo").unwrap(), DatabaseKind::Mongo);
        assert!(DatabaseKind::parse("type", "sqlite").unwrap_err().message.contains("postgresql"));
    }

    #[test]
    fn schedules_validate_and_find_the_next_run() {
        let s = Schedule::parse("0 3 * * *", 7).unwrap();
        let t = super::super::Timestamp::parse("2026-01-01T10:00:00Z").unwrap();
        assert_eq!(s.next_after(t).unwrap().to_rfc3339(), "2026-01-02T03:00:00Z");
        let every_second = Schedule::parse("* * * * * *", 1).unwrap();
        assert_eq!(every_second.next_after(t).unwrap().to_rfc3339(), "2026-01-01T10:00:01Z");
        assert_eq!(Schedule::parse("nope", 1).unwrap_err().field, "cron");
        assert_eq!(Schedule::parse("0 3 * * *", 0).unwrap_err().field, "retain");
    }

    #[test]
    fn credentials_debug_hides_passwords() {
        let s = format!("{:?}", creds());
        assert!(!s.contains("pw123") && !s.contains("root456"), "{s}");
    }
}
