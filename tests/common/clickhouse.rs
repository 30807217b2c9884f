//! A ClickHouse server of a test's own (tests/clickhouse.rs, tests/ship.rs, tests/live.rs):
//! Debian's clickhouse-server 18.16, the oldest the central store supports, on 127.0.0.1
//! and free ports, with its config and data in a temporary directory.
//!
//! Without `clickhouse-server` a test says so and passes, unless
//! PFSTATELOG_REQUIRE_CLICKHOUSE=1 (as in .ci/run), which makes that a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the server's user `pfs`.
pub const PASSWORD: &str = "ship-test-pw";

/// A server, stopped when dropped; it can be killed and started again on the same ports
/// and data.
pub struct Server {
    child: Option<Child>,
    exe: PathBuf,
    pub port: u16,
    /// The HTTPS port, when started with [`configured_tls`].
    pub https_port: Option<u16>,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    pub fn url(&self, db: &str) -> String {
        format!("clickhouse://pfs@127.0.0.1:{}/{db}", self.port)
    }

    /// Kill the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it (again), and wait until it answers.
    pub fn start(&mut self) {
        self.kill();
        let d = self.dir.path().display().to_string();
        let child = Command::new(&self.exe)
            .arg(format!("--config-file={d}/config.xml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            let up = ureq::get(&format!("http://127.0.0.1:{}/ping", self.port))
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok();
            if up {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("clickhouse-server exited at start ({st}): {log}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "clickhouse-server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run a query over HTTP as the test user; its answer as text.
    pub fn query(&self, sql: &str) -> String {
        ureq::post(&format!("http://127.0.0.1:{}/", self.port))
            .set("X-ClickHouse-User", "pfs")
            .set("X-ClickHouse-Key", PASSWORD)
            .send_string(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_string()
            .expect("answer")
    }
}

fn server_binary() -> Option<PathBuf> {
    ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start a server, or say why not (a failure when PFSTATELOG_REQUIRE_CLICKHOUSE=1).
pub fn start(test: &str) -> Option<Server> {
    let mut s = configured(test)?;
    s.start();
    Some(s)
}

/// A server's config and ports, not started yet ([`Server::start`]).
pub fn configured(test: &str) -> Option<Server> {
    configured_with(test, false)
}

/// A server that also speaks HTTPS, with a certificate for 127.0.0.1 made by `openssl` and
/// signed by a CA of the test's own (`DIR/ca.crt`); started.
pub fn configured_tls(test: &str) -> Option<Server> {
    let mut s = configured_with(test, true)?;
    s.start();
    Some(s)
}

/// Make `ca.crt` and `server.crt`/`server.key` in `dir` (a CA-signed leaf: a self-signed
/// CA certificate is no server certificate to rustls).
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=pfstatelog test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
}

fn configured_with(test: &str, tls: bool) -> Option<Server> {
    let Some(exe) = server_binary() else {
        let why = "clickhouse-server is not installed (apt-get install clickhouse-server)";
        if std::env::var("PFSTATELOG_REQUIRE_CLICKHOUSE").as_deref() == Ok("1") {
            panic!("{test}: {why}, and PFSTATELOG_REQUIRE_CLICKHOUSE=1");
        }
        eprintln!("SKIPPED {test}: {why}");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let (http, tcp) = (free_port(), free_port());
    let https = tls.then(free_port);
    let tls_config = match https {
        Some(port) => {
            make_certs(dir.path());
            format!(
                r#"<https_port>{port}</https_port>
  <openSSL><server>
    <certificateFile>{d}/server.crt</certificateFile><privateKeyFile>{d}/server.key</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>"#
            )
        }
        None => String::new(),
    };
    std::fs::write(
        dir.path().join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  {tls_config}
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>5368709120</mark_cache_size>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
</yandex>
"#
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("users.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <pfs><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></pfs>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#
        ),
    )
    .expect("users");
    Some(Server {
        child: None,
        exe,
        port: http,
        https_port: https,
        dir,
    })
}
