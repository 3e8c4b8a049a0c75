//! Process limits the `quire` command sets for itself at start.

/// Raise this process's soft limit on open files to its hard limit.
///
/// The soft limit is often 1024 while the hard limit is far higher. The
/// server needs a descriptor per client connection, three pipes per
/// runner process, and sled opens one file for every large page it writes
/// ("blobs"); `quire bench --only server` also holds its 500 clients'
/// sockets in the same process. Past the soft limit, `accept` fails and,
/// worse, sled's blob write fails after it has claimed room in an IO
/// buffer: that buffer is never written, the next flush waits for it for
/// ever while it holds sled's global lock, and every read and write of
/// the store (and the async threads that read tokens) stops with it.
/// Runner processes lower their own limit again when they sandbox
/// themselves.
pub fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur >= lim.rlim_max {
        return;
    }
    // An unlimited hard limit is not a valid soft one for open files (the
    // kernel caps it at fs.nr_open): try that cap then.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    let mut wants = vec![lim.rlim_max];
    if let Some(n) = nr_open.filter(|&n| n < lim.rlim_max && n > lim.rlim_cur) {
        wants.push(n);
    }
    for want in wants {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            tracing::debug!(from = lim.rlim_cur, to = want, "raised the open-file limit");
            return;
        }
    }
    tracing::warn!(
        soft = lim.rlim_cur,
        hard = lim.rlim_max,
        "could not raise the open-file limit; many clients at once may exhaust it"
    );
}
