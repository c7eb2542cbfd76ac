//! GitLab's human durations (`timeout`, `expire_in`): "1h 30m",
//! "2h20min", "3 weeks and 2 days", "3600", "never".

use std::time::Duration;

/// Parses a GitLab duration. `Ok(None)` is "never"; `Err` names the word
/// that was not understood.
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "never" {
        return Ok(None);
    }
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut num: Option<f64> = None;
    let mut chars = t.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() || c == '.' {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || d == '.' {
                    s.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if let Some(n) = num.take() {
                total += n; // a bare number followed by another number: seconds
            }
            num = Some(s.parse::<f64>().map_err(|_| format!("bad number {s:?}"))?);
        } else if c.is_ascii_alphabetic() {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphabetic() {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if w == "and" {
                continue;
            }
            let unit = match w.as_str() {
                "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
                "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
                "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
                "d" | "day" | "days" => 86400.0,
                "w" | "wk" | "wks" | "week" | "weeks" => 7.0 * 86400.0,
                "mo" | "mos" | "month" | "months" => 30.0 * 86400.0,
                "y" | "yr" | "yrs" | "year" | "years" => 365.0 * 86400.0,
                _ => return Err(format!("unknown unit {w:?}")),
            };
            let n = num
                .take()
                .ok_or_else(|| format!("unit {w:?} without a number"))?;
            total += n * unit;
        } else if c.is_whitespace() || c == ',' {
            chars.next();
        } else {
            return Err(format!("unexpected {c:?}"));
        }
    }
    if let Some(n) = num {
        total += n;
    }
    Ok(Some(Duration::from_secs_f64(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_forms() {
        let s = |t| parse(t).unwrap().unwrap().as_secs();
        assert_eq!(s("1h 30m"), 5400);
        assert_eq!(s("2h20min"), 8400);
        assert_eq!(s("1 week"), 604800);
        assert_eq!(s("3 weeks and 2 days"), 23 * 86400);
        assert_eq!(s("3600"), 3600);
        assert_eq!(s("3 mins 4 sec"), 184);
        assert_eq!(parse("never").unwrap(), None);
        assert!(parse("5 fortnights").is_err());
    }
}
