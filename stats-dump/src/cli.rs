//! Command-line conventions both tools follow: a closed stdout is not an error, and numeric
//! options are checked when parsed (clap value parsers), never at use.

/// Whether `e` comes from writing to a closed stdout (`tool | head`), which the tools do not
/// treat as an error. The io error may be wrapped by serde_json (which hides its kind behind
/// `io_error_kind`) or by context layers.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// A number of seconds for options such as `--stuck-after`: finite, 0 or more, at most 10^9.
/// (NaN would compare false with every age and silently turn the check off.)
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds (e.g. 60 or 2.5)"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!("{text:?} is out of range: give a number of seconds from 0 to 1000000000"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_finite_and_not_negative() {
        assert_eq!(parse_seconds("60"), Ok(60.0));
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        for bad in ["NaN", "nan", "inf", "-1", "-0.5", "1e10", "", "ten"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn broken_pipe_is_found_inside_serde_json_and_context() {
        use anyhow::Context;
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = serde_json::to_writer(Closed, &[1, 2, 3]).context("writing the JSON snapshot").unwrap_err();
        assert!(is_broken_pipe(&e));
        let other = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }
}
