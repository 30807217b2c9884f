//! Privilege: `record --user NAME [--chroot DIR]` opens the capture as root, prepares the
//! database directory for the user, then gives root up for good before any packet is parsed.
//! On OpenBSD the recorder then pledges and unveils the database directory only.

use anyhow::{anyhow, bail, Context};
use nix::unistd::{chown, chroot, setgid, setgroups, setuid, Gid, Uid, User};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Who to become.
pub struct Target {
    pub user: User,
}

pub fn lookup(name: &str) -> anyhow::Result<Target> {
    let user = User::from_name(name)
        .with_context(|| format!("looking up user \"{name}\""))?
        .ok_or_else(|| anyhow!("no such user \"{name}\" (--user)"))?;
    if user.uid.is_root() {
        bail!("--user {name} is root: name an unprivileged user");
    }
    Ok(Target { user })
}

/// Create the database directory 0750 and hand it, the database files and the lock file to
/// the user (files 0640), so the unprivileged recorder can write them.
pub fn prepare_db(db: &str, t: &Target) -> anyhow::Result<()> {
    let (uid, gid) = (t.user.uid, t.user.gid);
    let dir = Path::new(db)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("chmod {}", dir.display()))?;
        chown(&dir, Some(uid), Some(gid)).with_context(|| format!("chown {}", dir.display()))?;
    }
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let f = PathBuf::from(format!("{db}{suffix}"));
        if suffix.is_empty() && !f.exists() {
            // Created here so its mode is ours (0640), not the umask's.
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&f)
                .with_context(|| format!("creating {}", f.display()))?;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640))
                .with_context(|| format!("chmod {}", f.display()))?;
        }
        if f.exists() {
            chown(&f, Some(uid), Some(gid)).with_context(|| format!("chown {}", f.display()))?;
        }
    }
    Ok(())
}

/// chroot (optional), then drop groups, gid and uid; check root cannot be regained.
/// Returns the database path as seen after the chroot.
pub fn drop_to(t: &Target, chroot_dir: Option<&Path>, db: &str) -> anyhow::Result<String> {
    let mut db_after = db.to_string();
    if let Some(dir) = chroot_dir {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--chroot {}", dir.display()))?;
        let abs = std::path::absolute(db).with_context(|| format!("--db {db}"))?;
        let inside = abs.strip_prefix(&dir).map_err(|_| {
            anyhow!(
                "with --chroot {}, --db must lie inside it (got {db})",
                dir.display()
            )
        })?;
        db_after = Path::new("/").join(inside).display().to_string();
        chroot(&dir).with_context(|| format!("chroot {}", dir.display()))?;
        std::env::set_current_dir("/").context("chdir / after chroot")?;
    }
    let gid: Gid = t.user.gid;
    setgroups(&[gid]).context("setgroups")?;
    setgid(gid).context("setgid")?;
    setuid(t.user.uid).context("setuid")?;
    if setuid(Uid::from_raw(0)).is_ok() {
        bail!("could regain root after dropping privileges; refusing to run");
    }
    // Files the recorder creates from now on: 0640, directories 0750.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    Ok(db_after)
}

/// OpenBSD: after the database is open, allow only what the recorder needs from then on.
#[cfg(target_os = "openbsd")]
pub fn restrict(db: &str) -> anyhow::Result<()> {
    use std::ffi::CString;
    extern "C" {
        fn pledge(promises: *const libc::c_char, execpromises: *const libc::c_char) -> libc::c_int;
        fn unveil(path: *const libc::c_char, permissions: *const libc::c_char) -> libc::c_int;
    }
    let dir = Path::new(db)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = CString::new(dir.display().to_string()).context("database directory")?;
    let rwc = CString::new("rwc").context("unveil permissions")?;
    // bpf: the BIOCGSTATS ioctl behind the drop counters.
    let promises = CString::new("stdio rpath wpath cpath flock bpf").context("pledge promises")?;
    // SAFETY: valid NUL-terminated strings; a NULL pair locks unveil.
    unsafe {
        if unveil(dir.as_ptr(), rwc.as_ptr()) != 0 {
            bail!("unveil: {}", std::io::Error::last_os_error());
        }
        if unveil(std::ptr::null(), std::ptr::null()) != 0 {
            bail!("unveil lock: {}", std::io::Error::last_os_error());
        }
        if pledge(promises.as_ptr(), std::ptr::null()) != 0 {
            bail!("pledge: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "openbsd"))]
pub fn restrict(_db: &str) -> anyhow::Result<()> {
    Ok(())
}
