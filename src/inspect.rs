//! Inspection of log files with positioned reads (work in progress).
