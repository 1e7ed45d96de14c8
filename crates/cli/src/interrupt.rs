//! What happens when the process is told to stop (Ctrl-C, SIGTERM, a
//! closed terminal): files that only a finished command would publish are
//! removed before it exits, so an interrupted command leaves nothing half
//! written beside the user's files. A raw extract needs nothing here: its
//! copy has no name (see `agencylink_local::fsafe::anonymous_file_in`).
//!
//! The store needs nothing either: an upload is one SQLite transaction, and
//! bodies past the committed length are discarded by the next writer.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Files this process creates are private to its user, whatever the
/// caller's umask: they hold pseudonymised personal data.
pub(crate) fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Handle SIGINT, SIGTERM and SIGHUP on a thread of their own: remove the
/// live temporary files, then exit as the signal would have (128 + n).
pub(crate) fn install() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        // Without the handler the default action still stops the process;
        // what it leaves is swept when the store is next opened.
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let removed = agencylink_local::fsafe::remove_live_temp_files();
            eprintln!(
                "\ninterrupted: stopped; {removed} temporary files removed, nothing published"
            );
            std::process::exit(128 + sig);
        }
    });
}
