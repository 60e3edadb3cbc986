//! `--web.systemd-socket`: the listening sockets systemd passes on socket activation.
//!
//! systemd opens the sockets of a `.socket` unit, starts the service with them as file
//! descriptors 3, 4, … and says so in `LISTEN_FDS` (how many) and `LISTEN_PID` (for which
//! process: a child that inherited the environment must not take them). This follows
//! `sd_listen_fds(3)`: the descriptors count only when `LISTEN_PID` is this process; they are
//! marked close-on-exec. TCP and Unix stream sockets are served; anything else is refused.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{FromRawFd, RawFd};

use super::Bound;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Takes over the sockets passed by systemd; an error when there are none.
pub fn listeners() -> Result<Vec<Bound>, String> {
    let fds = passed_fds(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    )
    .map_err(|reason| format!("--web.systemd-socket: no sockets passed by systemd: {reason}"))?;
    fds.map(|fd| adopt(fd).map_err(|reason| format!("--web.systemd-socket: {reason}")))
        .collect()
}

/// The descriptors `LISTEN_PID` and `LISTEN_FDS` name for the process `own_pid`.
fn passed_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    own_pid: u32,
) -> Result<Range<RawFd>, String> {
    let pid = listen_pid.ok_or("LISTEN_PID is not set")?;
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID {pid:?} is not a process id"))?;
    if pid != own_pid {
        return Err(format!(
            "LISTEN_PID is {pid}, not this process ({own_pid}): the sockets are for another process"
        ));
    }
    let count = listen_fds.ok_or("LISTEN_FDS is not set")?;
    let count: RawFd = count
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS {count:?} is not a number"))?;
    if count < 1 {
        return Err(format!("LISTEN_FDS is {count}"));
    }
    Ok(LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count))
}

/// Checks that `fd` is a listening stream socket and makes it a tokio listener.
fn adopt(fd: RawFd) -> Result<Bound, String> {
    let socket_type = int_option(fd, libc::SO_TYPE)
        .map_err(|error| format!("fd {fd} is not a socket: {error}"))?;
    if socket_type != libc::SOCK_STREAM {
        return Err(format!("fd {fd} is not a stream socket"));
    }
    let listening = int_option(fd, libc::SO_ACCEPTCONN)
        .map_err(|error| format!("fd {fd}: cannot tell whether it listens: {error}"))?;
    if listening == 0 {
        return Err(format!("fd {fd} is a socket that does not listen"));
    }
    // SAFETY: fcntl on a descriptor we were handed; only sets a flag.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(format!("fd {fd}: cannot set close-on-exec: {error}"));
    }
    let family = address_family(fd).map_err(|error| format!("fd {fd}: {error}"))?;
    let bound = match family {
        libc::AF_INET | libc::AF_INET6 => {
            // SAFETY: systemd hands this descriptor to us alone; it is a listening TCP socket
            // (checked above) and nothing else in the process owns it.
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map(Bound::Tcp)
        }
        libc::AF_UNIX => {
            // SAFETY: as above, for a listening Unix stream socket.
            let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(listener))
                .map(Bound::Unix)
        }
        other => {
            return Err(format!(
                "fd {fd} has address family {other}, not TCP or Unix"
            ))
        }
    };
    bound.map_err(|error| format!("fd {fd}: {error}"))
}

fn int_option(fd: RawFd, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len describe a c_int the kernel writes into.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if result == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn address_family(fd: RawFd) -> std::io::Result<libc::c_int> {
    let mut address = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: address is a zeroed sockaddr_storage of the size passed in len.
    let result = unsafe { libc::getsockname(fd, address.as_mut_ptr().cast(), &mut len) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, and getsockname filled in at least the family.
    Ok(libc::c_int::from(
        unsafe { address.assume_init() }.ss_family,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_count_only_for_the_process_named() {
        assert_eq!(passed_fds(Some("42"), Some("2"), 42), Ok(3..5));
        let refusals = [
            (None, Some("1"), "LISTEN_PID is not set"),
            (
                Some("41"),
                Some("1"),
                "LISTEN_PID is 41, not this process (42)",
            ),
            (Some("x"), Some("1"), "not a process id"),
            (Some("42"), None, "LISTEN_FDS is not set"),
            (Some("42"), Some("0"), "LISTEN_FDS is 0"),
            (Some("42"), Some("two"), "not a number"),
        ];
        for (pid, fds, expected) in refusals {
            let error = passed_fds(pid, fds, 42).unwrap_err();
            assert!(error.contains(expected), "{pid:?} {fds:?}: {error}");
        }
    }
}
