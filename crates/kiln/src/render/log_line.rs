//! What of a phase's output line is worth showing: carriage-return progress
//! (apt, curl, pip redraw one line with `\r`) collapsed to its last state,
//! terminal escapes dropped, and known noise left out. Plain, json and tty
//! all show lines through [`clean`].

/// Lines every Debian package install prints that say nothing to the user.
const NOISE: &[&str] = &["debconf: delaying package configuration"];

/// The line as a user would last have seen it on a terminal, or `None` when
/// it is noise.
pub fn clean(line: &str) -> Option<String> {
    // `50%\r100%\r` shows `100%`: the last segment a terminal would keep.
    let last = line
        .split('\r')
        .rev()
        .find(|s| !s.trim().is_empty())
        .unwrap_or("");
    let shown = strip_escapes(last);
    let shown = shown.trim_end();
    if NOISE.iter().any(|n| shown.starts_with(n)) {
        return None;
    }
    Some(shown.to_string())
}

/// Drops CSI sequences (`ESC [ … final`) and other control characters but
/// tabs, which would move the cursor of the renderer's screen.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte.
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' {
            out.push_str("    ");
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn lines_are_shown_as_a_terminal_last_showed_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("plain line", Some("plain line")),
            ("  0%\r 50%\r100%", Some("100%")),
            // curl ends its progress with `\r`: the last drawn state stays.
            (" 10 kB\r 20 kB\r", Some(" 20 kB")),
            ("\u{1b}[1mbold\u{1b}[0m text", Some("bold text")),
            ("a\tb", Some("a    b")),
            (
                "debconf: delaying package configuration, since apt-utils is not installed",
                None,
            ),
            ("", Some("")),
        ];
        for (line, want) in cases {
            assert_eq!(clean(line).as_deref(), *want, "{line:?}");
        }
    }

    /// Generated: whatever progress precedes the last `\r`, only the last
    /// state is shown, and no control character survives.
    #[test]
    fn generated_progress_collapses_to_its_last_state() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let steps = 1 + next() % 6;
            let states: Vec<String> = (0..steps)
                .map(|_| {
                    format!(
                        "{:>3}% [{}]",
                        next() % 101,
                        "#".repeat((next() % 20) as usize)
                    )
                })
                .collect();
            let mut line = states.join("\r");
            if next() % 2 == 0 {
                line.push('\r');
            }
            let shown = clean(&line).unwrap_or_default();
            assert_eq!(shown, states.last().map(|s| s.trim_end()).unwrap_or(""));
            assert!(!shown.chars().any(char::is_control));
        }
    }
}
