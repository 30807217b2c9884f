//! The central store: many recorders ship their lifetimes, runs, gaps and creators to one
//! ClickHouse database (`pfstatelog ship`), and the query commands read it as they read a
//! local file (`--db clickhouse://…`). docs/clickhouse.md has the layout and why.
//!
//! Spoken over ClickHouse's HTTP interface with RowBinary bodies, and only with what both
//! an 18.16 server and a current one accept.

pub mod reader;
pub mod rowbinary;
pub mod schema;
pub mod ship;

use anyhow::{anyhow, bail, Context};
use std::io::Read;
use std::time::Duration;

/// Where the password comes from when no `--password-file` is given.
pub const PASSWORD_ENV: &str = "PFSTATELOG_CLICKHOUSE_PASSWORD";

/// A PEM file of the certificate authorities to trust for `clickhouses://` instead of the
/// public ones (a server with a certificate of a private CA).
pub const CA_ENV: &str = "PFSTATELOG_CLICKHOUSE_CA";

/// Whether a `--db` value names a server rather than a file.
pub fn is_url(db: &str) -> bool {
    db.contains("://")
}

/// A parsed `clickhouse://[USER@]HOST[:PORT]/DATABASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow!("{url}: not a URL"))?;
        let https = match scheme {
            "clickhouse" => false,
            "clickhouses" => true,
            _ => bail!(
                "{url}: unknown scheme \"{scheme}\" (expected clickhouse://[USER@]HOST[:PORT]/DATABASE, or clickhouses:// for HTTPS)"
            ),
        };
        let (authority, database) = rest.split_once('/').ok_or_else(|| {
            anyhow!("{url}: no database (expected clickhouse://[USER@]HOST[:PORT]/DATABASE)")
        })?;
        if database.is_empty()
            || !database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || database.starts_with(|c: char| c.is_ascii_digit())
        {
            bail!("{url}: database name \"{database}\" must be letters, digits and _ (not starting with a digit)");
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                if u.contains(':') {
                    bail!("{url}: no password in the URL: put it in ${PASSWORD_ENV} or a --password-file");
                }
                if u.is_empty() {
                    bail!("{url}: empty user name");
                }
                (Some(u.to_string()), h)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| anyhow!("{url}: unclosed [ in the host"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            bail!("{url}: bad host \"{host}\"");
        }
        let port = match port {
            None if https => 8443,
            None => 8123,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => bail!("{url}: bad port \"{p}\" (expected 1-65535)"),
            },
        };
        Ok(Target {
            https,
            user,
            host,
            port,
            database: database.to_string(),
        })
    }

    /// The URL as the user gave it, for messages (it never holds a password).
    pub fn shown(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{}{host}:{}/{}",
            if self.https {
                "clickhouses"
            } else {
                "clickhouse"
            },
            self.user
                .as_deref()
                .map_or(String::new(), |u| format!("{u}@")),
            self.port,
            self.database
        )
    }
}

/// The password: the first line of `file` if given, else `$PFSTATELOG_CLICKHOUSE_PASSWORD`,
/// else none (the server's user without a password).
pub fn password(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("--password-file {}", f.display()))?;
        return Ok(Some(s.lines().next().unwrap_or("").to_string()));
    }
    Ok(std::env::var(PASSWORD_ENV).ok())
}

/// A synchronous client of one database over HTTP.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    pub target: Target,
}

impl Client {
    pub fn new(target: Target, password: Option<String>) -> anyhow::Result<Client> {
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(300))
            .timeout_write(Duration::from_secs(300));
        if target.https {
            if let Some(ca) = std::env::var_os(CA_ENV) {
                agent = agent.tls_config(std::sync::Arc::new(trusting(std::path::Path::new(&ca))?));
            }
        }
        let agent = agent.build();
        let host = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.clone()
        };
        let base = format!(
            "{}://{host}:{}/",
            if target.https { "https" } else { "http" },
            target.port
        );
        let user = target.user.clone().unwrap_or_else(|| "default".into());
        let auth = Some(format!(
            "Basic {}",
            base64(format!("{user}:{}", password.unwrap_or_default()).as_bytes())
        ));
        Ok(Client {
            agent,
            base,
            auth,
            target,
        })
    }

    fn post(
        &self,
        url_query: &[(&str, &str)],
        body: &[u8],
        in_db: bool,
    ) -> anyhow::Result<ureq::Response> {
        let mut req = self.agent.post(&self.base);
        if in_db {
            req = req.query("database", &self.target.database);
        }
        for (k, v) in url_query {
            req = req.query(k, v);
        }
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        match req.send_bytes(body) {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                Err(anyhow!(self.server_error(code, &text)))
            }
            Err(ureq::Error::Transport(t)) => {
                // ureq says "URL: Connection Failed: Connect error: Connection refused (os
                // error 111)": the URL (with its query) goes, the causes stay.
                let full = t.to_string();
                let why = match t.url() {
                    Some(u) => full
                        .strip_prefix(u.as_str())
                        .map_or(full.clone(), |r| r.trim_start_matches(": ").to_string()),
                    None => full,
                };
                Err(anyhow!(
                    "{}: cannot reach the server: {why}",
                    self.target.shown()
                ))
            }
        }
    }

    /// One clear line for an error the server answered.
    fn server_error(&self, code: u16, text: &str) -> String {
        let first = text.lines().next().unwrap_or("").trim();
        let ch_code = first
            .strip_prefix("Code: ")
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u32>().ok());
        let shown = self.target.shown();
        match ch_code {
            // Wrong password, unknown user, or a user not allowed from here.
            Some(192 | 193 | 194 | 195 | 516) => {
                format!("{shown}: the server refused the user or password (set ${PASSWORD_ENV} or --password-file)")
            }
            Some(81) => format!(
                "{shown}: no database \"{}\" on the server (pfstatelog ship creates it)",
                self.target.database
            ),
            Some(60) => format!(
                "{shown}: the database holds no pfstatelog tables (pfstatelog ship creates them)"
            ),
            _ if code == 401 || code == 403 => {
                format!("{shown}: the server refused the user or password (set ${PASSWORD_ENV} or --password-file)")
            }
            _ => {
                // Server messages can be long: the part that says what went wrong.
                let msg: String = first.chars().take(300).collect();
                format!("{shown}: the server answered HTTP {code}: {msg}")
            }
        }
    }

    /// Run a statement that returns nothing.
    pub fn exec(&self, sql: &str) -> anyhow::Result<()> {
        self.post(&[], sql.as_bytes(), true)?
            .into_string()
            .map(|_| ())
            .with_context(|| format!("{}: reading the answer", self.target.shown()))
    }

    /// Run a statement outside the database (creating it).
    pub fn exec_server(&self, sql: &str) -> anyhow::Result<()> {
        self.post(&[], sql.as_bytes(), false)?
            .into_string()
            .map(|_| ())
            .with_context(|| format!("{}: reading the answer", self.target.shown()))
    }

    /// Run a SELECT; its rows come back as RowBinary, read as they arrive.
    pub fn select(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Box<dyn Read + Send>> {
        let sql = format!("{sql} FORMAT RowBinary");
        Ok(self.post(settings, sql.as_bytes(), true)?.into_reader())
    }

    /// Run a SELECT and read its whole answer (small answers: runs, a hot pair's rows).
    pub fn select_all(&self, sql: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.select(sql, &[])?
            .read_to_end(&mut out)
            .with_context(|| format!("{}: reading the answer", self.target.shown()))?;
        Ok(out)
    }

    /// INSERT rows encoded as RowBinary into `table (cols)`.
    pub fn insert(&self, table: &str, cols: &str, rows: &[u8]) -> anyhow::Result<()> {
        let q = format!("INSERT INTO {table} ({cols}) FORMAT RowBinary");
        self.post(&[("query", &q)], rows, true)?
            .into_string()
            .map(|_| ())
            .with_context(|| format!("{}: reading the answer", self.target.shown()))
    }
}

/// A TLS configuration trusting only the certificate authorities of the PEM file `ca`.
fn trusting(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let shown = format!("${CA_ENV} {}", ca.display());
    let pem = std::fs::read(ca).with_context(|| shown.clone())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| anyhow!("{shown}: not a PEM certificate file ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| anyhow!("{shown}: unusable certificate ({e})"))?;
    }
    if roots.is_empty() {
        bail!("{shown}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)");
    }
    // ring's provider, as ureq 2 itself builds it (rustls deprecates its name for the
    // provider with post-quantum key exchange, which needs aws-lc-rs and a C toolchain).
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Standard base64, for the Basic authorization header.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for ch in b.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= ch.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A hex literal of bytes, as a ClickHouse FixedString(16) expression.
pub fn fixed16(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!("toFixedString(unhex('{hex}'), 16)")
}

/// A string as a ClickHouse literal.
pub fn quote(s: &str) -> String {
    let mut q = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => q.push_str("\\'"),
            '\\' => q.push_str("\\\\"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_documented() {
        let t = Target::parse("clickhouse://pfs@db.example:9000/logs").unwrap();
        assert_eq!(t.user.as_deref(), Some("pfs"));
        assert_eq!(
            (t.host.as_str(), t.port, t.database.as_str()),
            ("db.example", 9000, "logs")
        );
        let t = Target::parse("clickhouse://[::1]/pf").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8123));
        assert_eq!(Target::parse("clickhouses://h/pf").unwrap().port, 8443);
        for bad in [
            "http://h/pf",
            "clickhouse://h:0/pf",
            "clickhouse://h:99999/pf",
            "clickhouse://h:x/pf",
            "clickhouse://h/",
            "clickhouse://h",
            "clickhouse://u:pw@h/pf",
            "clickhouse://h/p;DROP",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"default:"), "ZGVmYXVsdDo=");
        assert_eq!(base64(b"pfs:s3cret"), "cGZzOnMzY3JldA==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
