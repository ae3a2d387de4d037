//! Model-name globs for a tenant's `models` list: `*` matches any run of characters, `?` one
//! character, everything else itself. Small enough that a dependency would cost more.

/// Longest accepted pattern; matching is O(pattern × name) in the worst case.
const MAX_PATTERN: usize = 256;

pub fn validate(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty pattern matches nothing".into());
    }
    if pattern.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} characters"));
    }
    Ok(())
}

/// Whether `name` matches `pattern` (iterative, with one backtrack point: linear in
/// practice, never exponential).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("mock-*", "mock-model"));
        assert!(matches("mock-*", "mock-"));
        assert!(!matches("mock-*", "mock"));
        assert!(matches("llama-3-8b", "llama-3-8b"));
        assert!(!matches("llama-3-8b", "llama-3-8b-instruct"));
        assert!(matches("*-8b*", "llama-3-8b-instruct"));
        assert!(matches("m?del", "model"));
        assert!(!matches("m?del", "mdel"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }
}
