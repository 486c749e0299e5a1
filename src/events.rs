//! Recovery, rotation and failure events, reported through the `log` crate when the `log`
//! feature is on (target `softadastra_wal`) and compiled away when it is off.

/// `event!(info, "format", args...)`: a `log` record at that level, or nothing without the
/// feature. Arguments are still type-checked (and count as used) without the feature, but never
/// evaluated.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        {
            log::$level!(target: "softadastra_wal", $($arg)+);
        }
        #[cfg(not(feature = "log"))]
        {
            if false {
                let _ = format_args!($($arg)+);
            }
        }
    }};
}

pub(crate) use event;
