//! The query string of an HTTP request target (`?after=%2Froom%2F7&x=1`), parsed without trusting
//! it: at most `MAX_PAIRS` pairs, keys of at most `MAX_KEY` bytes, values of at most `MAX_VALUE`
//! bytes, percent-decoded (`+` is a space, as HTML forms send it) into UTF-8. A malformed query
//! is refused with the reason (the http listener answers 400). Pure: no sockets.

pub const MAX_PAIRS: usize = 16;
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 1024;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one key or value (`+` -> space) into UTF-8, or says why it cannot.
fn decode(s: &str, max: usize, what: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len().min(max));
    let mut i = 0;
    while i < b.len() {
        let c = match b[i] {
            b'%' => {
                let v = b.get(i + 1).copied().and_then(hex).zip(b.get(i + 2).copied().and_then(hex));
                let Some((hi, lo)) = v else { return Err(format!("bad percent-encoding in a query {what}")) };
                i += 3;
                hi << 4 | lo
            }
            b'+' => {
                i += 1;
                b' '
            }
            c => {
                i += 1;
                c
            }
        };
        if out.len() == max {
            return Err(format!("a query {what} over {max} bytes"));
        }
        out.push(c);
    }
    String::from_utf8(out).map_err(|_| format!("a query {what} that is not UTF-8"))
}

/// The pairs of the query in the target `target` (what follows its first `?`, up to a `#`), in
/// order; a key without `=` has an empty value. No `?`: no pairs.
pub fn parse(target: &str) -> Result<Vec<(String, String)>, String> {
    let Some((_, q)) = target.split_once('?') else { return Ok(Vec::new()) };
    let q = q.split('#').next().unwrap_or("");
    let mut pairs = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_PAIRS {
            return Err(format!("more than {MAX_PAIRS} query parameters"));
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(k, MAX_KEY, "key")?, decode(v, MAX_VALUE, "value")?));
    }
    Ok(pairs)
}

/// The value of the first pair named `key`.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_refuses_what_it_cannot_trust() {
        let p = parse("/_luact/state.json?after=%2Froom%2F7&x&y=a+b#frag").unwrap();
        assert_eq!(p, vec![("after".into(), "/room/7".into()), ("x".into(), "".into()), ("y".into(), "a b".into())]);
        assert_eq!(get(&p, "after"), Some("/room/7"));
        assert_eq!(get(&p, "none"), None);
        assert_eq!(parse("/a").unwrap(), vec![]);
        assert_eq!(parse("/a?").unwrap(), vec![]);
        assert_eq!(parse("/a?&&k=%C3%A9").unwrap(), vec![("k".into(), "é".into())]);
        assert!(parse("/a?k=%zz").unwrap_err().contains("bad percent-encoding"));
        assert!(parse("/a?k=%4").unwrap_err().contains("bad percent-encoding"));
        assert!(parse("/a?k=%ff").unwrap_err().contains("not UTF-8"));
        let long = format!("/a?k={}", "x".repeat(MAX_VALUE + 1));
        assert!(parse(&long).unwrap_err().contains("over 1024 bytes"));
        assert_eq!(parse(&format!("/a?k={}", "x".repeat(MAX_VALUE))).unwrap()[0].1.len(), MAX_VALUE);
        let many = format!("/a?{}", vec!["k=1"; MAX_PAIRS + 1].join("&"));
        assert!(parse(&many).unwrap_err().contains("more than 16"));
    }
}
