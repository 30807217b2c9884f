// Migrations are compiled into the binary (include_str!): rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    static_libpcap();
}

/// Link libpcap statically where its archive is installed (Debian's libpcap-dev ships
/// one): every command then starts without loading libpcap's shared dependencies (dbus,
/// systemd, gcrypt, gpg-error, libcap, lzma, zstd, lz4), about 0.6 ms of CPU per start.
/// The `pcap` crate names `-lpcap`; the linker takes the first directory that holds
/// `libpcap.so` or `libpcap.a`, so a directory holding only the archive, searched before
/// the system's, makes that name the static library. Set PFSTATELOG_DYNAMIC_PCAP=1 to
/// link the shared library instead.
fn static_libpcap() {
    println!("cargo:rerun-if-env-changed=PFSTATELOG_DYNAMIC_PCAP");
    if std::env::var_os("PFSTATELOG_DYNAMIC_PCAP").is_some()
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ];
    let Some(dir) = dirs
        .iter()
        .map(std::path::Path::new)
        .find(|d| d.join("libpcap.a").exists())
    else {
        return;
    };
    // What the archive needs besides libc: only D-Bus (and, through it, systemd) is
    // provided for below; anything else, or no pkg-config to ask, keeps the shared library.
    let needs = match std::process::Command::new("pkg-config")
        .args(["--static", "--libs-only-l", "libpcap"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => return,
    };
    let needs = String::from_utf8_lossy(&needs.stdout).into_owned();
    let dbus = needs.split_whitespace().any(|l| l == "-ldbus-1");
    if needs
        .split_whitespace()
        .any(|l| !["-lpcap", "-ldbus-1", "-lsystemd"].contains(&l))
        || (dbus && !dir.join("libdbus-1.a").exists())
    {
        return;
    }
    let link = std::path::Path::new(&out).join("static-pcap");
    let _ = std::fs::create_dir_all(&link);
    let _ = std::fs::remove_file(link.join("libpcap.a"));
    if std::os::unix::fs::symlink(dir.join("libpcap.a"), link.join("libpcap.a")).is_err() {
        return;
    }
    println!("cargo:rustc-link-search=native={}", link.display());
    // What libpcap.a needs, after it on the command line: Debian's is built with D-Bus
    // capture, whose archive needs two systemd socket-activation calls (defined in
    // src/main.rs: a D-Bus client never uses them).
    if dbus {
        println!("cargo:rustc-link-arg=-l:libdbus-1.a");
    }
}
