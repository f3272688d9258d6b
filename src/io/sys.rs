//! The operating system calls libc alone offers: a thread's nice value, handing freed memory back, the clock tick. The only `unsafe` in tolk.
#![allow(unsafe_code)]

/// Sets the calling thread's nice value (on Linux a thread's own, not its process's):
/// below 0, the media thread is run ahead of busier work when the cores are full.
#[cfg(target_os = "linux")]
pub fn set_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority take and return plain integers.
    let tid = unsafe { libc::gettid() };
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "per-thread nice values are Linux's"))
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn nice() -> i32 {
    // SAFETY: as in set_nice; errno is cleared first since -1 is also a valid nice value.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
}

/// Hands memory the allocator holds free back to the system. A listener's WebRTC session
/// (about 50 KiB) is freed when it settles, in the middle of the heap where glibc's malloc
/// never returns it on its own: after a join storm the process would keep its peak size.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises the soft limit on open files to the hard limit (systemd's default soft limit is
/// 1,024: a thousand WebSockets would use it up); returns the limit now in force.
pub fn raise_file_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// Clock ticks per second, the unit of CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads a configuration value; it has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if n > 0 {
            return n as f64;
        }
    }
    100.0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn the_file_limit_goes_up_to_the_hard_limit() {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in raise_file_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(raise_file_limit().unwrap(), lim.rlim_max);
    }

    #[test]
    fn nice_applies_to_the_calling_thread_only_or_is_refused() {
        let main = nice();
        let (lowered, raised) = std::thread::spawn(|| {
            // Lowering priority is always allowed; raising it needs root or CAP_SYS_NICE.
            set_nice(5).unwrap();
            let lowered = nice();
            let raised = set_nice(-5).map(|()| nice());
            (lowered, raised)
        })
        .join()
        .unwrap();
        assert_eq!(lowered, 5);
        match raised {
            Ok(n) => assert_eq!(n, -5),
            Err(e) => assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}"),
        }
        assert_eq!(nice(), main, "other threads keep their priority");
    }

    #[test]
    fn the_clock_tick_is_read() {
        assert!(clock_ticks() >= 100.0);
    }
}

/// Bytes free for an unprivileged writer on the filesystem that holds `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: statvfs reads the NUL-terminated path and writes the one struct passed by pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}
