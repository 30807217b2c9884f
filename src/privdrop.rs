//! Privilege: `record --user NAME [--chroot DIR]` opens the capture as root, creates the
//! database directory for the user if it is missing (and touches nothing inside it), then
//! gives root up for good before any packet is parsed. The database and lock files are
//! checked, created and opened only after that, as the user.
//! On OpenBSD the recorder then pledges and unveils the database directory only.

use anyhow::{anyhow, bail, Context};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{
    access, chroot, fchown, setgid, setgroups, setuid, AccessFlags, Gid, Group, Uid, User,
};
use std::path::{Component, Path, PathBuf};

/// Who to become.
pub(crate) struct Target {
    pub user: User,
    /// The user's primary group names no other member, so a database directory writable by
    /// that group (systemd's `StateDirectory=`, root:NAME 0770) is writable by root and the
    /// user alone. Looked up now: there may be no group file inside a chroot. (Users whose
    /// primary group it is too are not looked for.)
    pub own_group: bool,
}

pub(crate) fn lookup(name: &str) -> anyhow::Result<Target> {
    let user = User::from_name(name)
        .with_context(|| format!("looking up user \"{name}\""))?
        .ok_or_else(|| anyhow!("no such user \"{name}\" (--user)"))?;
    if user.uid.is_root() {
        bail!("--user {name} is root: name an unprivileged user");
    }
    let own_group = Group::from_gid(user.gid)
        .ok()
        .flatten()
        .is_some_and(|g| g.mem.iter().all(|m| *m == user.name));
    Ok(Target { user, own_group })
}

/// The names the recorder uses beside the database file.
const DB_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", ".lock"];

/// The database path's directory (`.` for a bare file name).
fn db_dir(db: &str) -> &Path {
    Path::new(db)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// As root, before the drop: create the database directory if it is missing, and nothing
/// else. Root opens, creates, chowns and writes nothing inside an existing directory: the
/// database, its `-wal`/`-shm` and the lock file are created and opened only after the
/// drop, with the user's rights, so a symlink or hard link planted there reaches nothing
/// the user could not reach anyway. [`check_db`] then refuses such a folder clearly.
pub(crate) fn prepare_db(db: &str, t: &Target) -> anyhow::Result<()> {
    let dir = db_dir(db);
    if Path::new(db).file_name().is_none() {
        bail!("--db {db} names no file");
    }
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_dir(dir, t),
        // Whatever it is, the user's checks after the drop judge it.
        _ => Ok(()),
    }
}

/// After the drop, as the user (inside the chroot, if any), before the database is opened:
/// refuse a database directory others could write, or files in it that are not the user's
/// own regular files with one link (a planted symlink or hard link, or a database left by a
/// run as root). Root is already safe here (it touched nothing); this keeps a third party
/// from feeding the recorder files and says clearly what is wrong. Root-owned files are
/// refused, never chowned: the user could have hard-linked any root file there earlier, and
/// one whose other name has since gone (a replaced password file) would look like ours.
pub(crate) fn check_db(db: &str, t: &Target) -> anyhow::Result<()> {
    let dir = db_dir(db);
    let Some(file) = Path::new(db).file_name() else {
        bail!("--db {db} names no file");
    };
    let name = &t.user.name;
    let dirfd = openat(
        AT_FDCWD,
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("database directory {} (as {name})", dir.display()))?;
    let st = fstat(&dirfd).with_context(|| format!("database directory {}", dir.display()))?;
    let (uid, gid) = (t.user.uid.as_raw(), t.user.gid.as_raw());
    let group_ok = st.st_gid == gid && t.own_group;
    let others = if st.st_uid != 0 && st.st_uid != uid {
        Some(format!(
            "is owned by uid {}, neither root nor {name}",
            st.st_uid
        ))
    } else if st.st_mode & 0o002 != 0 || (st.st_mode & 0o020 != 0 && !group_ok) {
        Some(format!(
            "is writable by others than root and {name} (mode {:o}, gid {})",
            st.st_mode & 0o7777,
            st.st_gid
        ))
    } else {
        None
    };
    if let Some(why) = others {
        bail!(
            "database directory {} {why}: give --db a directory only root and {name} can write (record creates a missing one)",
            dir.display()
        );
    }
    if access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_err() {
        bail!(
            "database directory {}: {name} cannot write it (uid {}, gid {}, mode {:o})",
            dir.display(),
            st.st_uid,
            st.st_gid,
            st.st_mode & 0o7777
        );
    }
    for suffix in DB_SUFFIXES {
        let mut f = file.to_os_string();
        f.push(suffix);
        let shown = dir.join(&f);
        let st = match fstatat(&dirfd, f.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => bail!("{}: {e}", shown.display()),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let why = if kind == SFlag::S_IFLNK {
            "is a symbolic link".to_string()
        } else if kind != SFlag::S_IFREG {
            "is not a regular file".to_string()
        } else if st.st_uid != uid {
            format!("is owned by uid {}, not by {name}", st.st_uid)
        } else if st.st_nlink != 1 {
            format!("has {} hard links", st.st_nlink)
        } else {
            continue;
        };
        bail!(
            "{} {why}: refusing to start (a file here must be {name}'s own: remove it, or chown it if it is the database)",
            shown.display()
        );
    }
    Ok(())
}

/// Create the missing database directory (0750, the user's) and its missing parents
/// (0755, root's). Root walks the path from `/` one name at a time, each looked up on the
/// descriptor of the folder before with `O_NOFOLLOW`, and looks up or creates a name only in
/// a folder that is root's and writable by no one else (or sticky, like /tmp: there others
/// cannot rename or remove root's entries). Otherwise a user owning a folder on the way, or
/// a symlink in it, could swap it between the checks and the `mkdir` and have root create
/// and chown a directory of the user's choosing anywhere. Symlinks on the way are refused,
/// not followed: a path written without them is asked for instead.
fn create_dir(dir: &Path, t: &Target) -> anyhow::Result<()> {
    let abs =
        std::path::absolute(dir).with_context(|| format!("--db directory {}", dir.display()))?;
    let names: Vec<_> = abs
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    let refuse = |why: String| {
        anyhow!(
            "cannot create the database directory {}: {why}; create it yourself, owned by {} and mode 0750",
            dir.display(),
            t.user.name
        )
    };
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let mut fd = openat(AT_FDCWD, "/", dir_flags, Mode::empty()).context("opening /")?;
    let mut shown = PathBuf::from("/");
    for (i, c) in names.iter().enumerate() {
        let st = fstat(&fd).with_context(|| shown.display().to_string())?;
        let sticky = st.st_mode & 0o1000 != 0;
        if st.st_uid != 0 || (st.st_mode & 0o022 != 0 && !sticky) {
            return Err(refuse(format!(
                "{} is not root's alone (uid {}, mode {:o})",
                shown.display(),
                st.st_uid,
                st.st_mode & 0o7777
            )));
        }
        let name = c.as_os_str();
        let last = i + 1 == names.len();
        let created = match mkdirat(&fd, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(refuse(format!("mkdir {}: {e}", shown.join(name).display()))),
        };
        shown.push(name);
        let next = openat(&fd, name, dir_flags, Mode::empty()).map_err(|e| {
            let link = fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|s| {
                SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
            });
            if link {
                refuse(format!("{} is a symbolic link", shown.display()))
            } else {
                refuse(format!("{}: {e}", shown.display()))
            }
        })?;
        if created {
            // Ours: the folder it is in is root's alone, so nobody swapped it since mkdir.
            let (uid, gid, mode) = if last {
                (Some(t.user.uid), Some(t.user.gid), 0o750)
            } else {
                (None, None, 0o755)
            };
            // chmod first: once it is the user's, root without CAP_FOWNER (the systemd
            // unit) could not.
            fchmod(&next, Mode::from_bits_truncate(mode))
                .with_context(|| format!("chmod {}", shown.display()))?;
            fchown(&next, uid, gid).with_context(|| format!("chown {}", shown.display()))?;
        }
        fd = next;
    }
    Ok(())
}

/// With `--chroot DIR`: DIR resolved, and the database path as seen inside it. An argument
/// error, so checked before anything else is.
pub(crate) fn chroot_layout(
    chroot_dir: Option<&Path>,
    db: &str,
) -> anyhow::Result<Option<(PathBuf, String)>> {
    let Some(dir) = chroot_dir else {
        return Ok(None);
    };
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
    let db_after = Path::new("/").join(inside).display().to_string();
    Ok(Some((dir, db_after)))
}

/// chroot (optional), then drop groups, gid and uid; check root cannot be regained.
/// Returns the database path as seen after the chroot.
pub(crate) fn drop_to(t: &Target, chroot_dir: Option<&Path>, db: &str) -> anyhow::Result<String> {
    let mut db_after = db.to_string();
    if let Some((dir, inside)) = chroot_layout(chroot_dir, db)? {
        db_after = inside;
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

/// OpenBSD: after the database is open, allow only what the recorder needs from then on
/// (`network`: shipping to a central server, which needs sockets and name lookups).
#[cfg(target_os = "openbsd")]
pub(crate) fn restrict(db: &str, network: bool) -> anyhow::Result<()> {
    use std::ffi::CString;
    extern "C" {
        fn pledge(promises: *const libc::c_char, execpromises: *const libc::c_char) -> libc::c_int;
        fn unveil(path: *const libc::c_char, permissions: *const libc::c_char) -> libc::c_int;
    }
    let dir = CString::new(db_dir(db).display().to_string()).context("database directory")?;
    let rwc = CString::new("rwc").context("unveil permissions")?;
    // bpf: the BIOCGSTATS ioctl behind the drop counters.
    let promises = CString::new(if network {
        "stdio rpath wpath cpath flock bpf inet dns"
    } else {
        "stdio rpath wpath cpath flock bpf"
    })
    .context("pledge promises")?;
    let r = CString::new("r").context("unveil permissions")?;
    let lookups: Vec<CString> = if network {
        ["/etc/resolv.conf", "/etc/hosts"]
            .iter()
            .filter_map(|p| CString::new(*p).ok())
            .collect()
    } else {
        Vec::new()
    };
    // SAFETY: valid NUL-terminated strings; a NULL pair locks unveil.
    unsafe {
        if unveil(dir.as_ptr(), rwc.as_ptr()) != 0 {
            bail!("unveil: {}", std::io::Error::last_os_error());
        }
        for p in &lookups {
            // A file missing (in a chroot) only makes names unresolvable: not fatal.
            let _ = unveil(p.as_ptr(), r.as_ptr());
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
pub(crate) fn restrict(_db: &str, _network: bool) -> anyhow::Result<()> {
    Ok(())
}
