//! `.dockerignore` rules: the common subset of the Docker CLI's syntax, matched the way the CLI matches.
//!
//! Supported: comments (`#`), blank lines, `*` (any run of characters except `/`), `?` (one character except
//! `/`), `**` as a whole path segment (any number of segments, including none), `[...]` classes (`[!...]` or
//! `[^...]` negated, `a-z` ranges), `\` escapes, leading `/` (ignored: patterns are relative to the context
//! root), trailing `/`, and `!` exceptions. As in Docker, the last matching rule wins, and a rule that matches
//! a directory also matches everything under it.

/// Parsed `.dockerignore` rules, in file order.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Vec<char>>,
    exception: bool,
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file. Never fails: lines that clean to nothing are skipped.
    pub fn parse(text: &str) -> IgnoreRules {
        let patterns = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (exception, body) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments = clean_segments(body);
                if segments.is_empty() {
                    return None;
                }
                Some(Pattern { segments: segments.into_iter().map(|s| s.chars().collect()).collect(), exception })
            })
            .collect();
        IgnoreRules { patterns }
    }

    /// True when `rel_path` (relative to the context root, `/`-separated) is excluded from the build context.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path: Vec<Vec<char>> = clean_segments(rel_path).into_iter().map(|s| s.chars().collect()).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.matches_path_or_parent(&path) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// True when some rule is an `!` exception, so an excluded directory may still hold included files.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }
}

impl Pattern {
    fn matches_path_or_parent(&self, path: &[Vec<char>]) -> bool {
        (1..=path.len()).any(|end| match_segments(&self.segments, &path[..end]))
    }
}

/// Splits on `/`, dropping empty and `.` segments and resolving `..` (like Go's `filepath.Clean`).
fn clean_segments(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out
}

fn match_segments(pattern: &[Vec<char>], path: &[Vec<char>]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first.as_slice() == ['*', '*'] => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((head, tail)) => glob(first, head) && match_segments(rest, tail),
            None => false,
        },
    }
}

/// Matches one path segment against one pattern segment.
fn glob(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|skip| glob(&p[1..], &t[skip..])),
        Some('?') => !t.is_empty() && glob(&p[1..], &t[1..]),
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && glob(&p[2..], &t[1..]),
        Some('[') => match (parse_class(p), t.first()) {
            (Some((matches, used)), Some(c)) => matches(*c) && glob(&p[used..], &t[1..]),
            (Some(_), None) => false,
            // An unterminated `[` is an ordinary character.
            (None, first) => first == Some(&'[') && glob(&p[1..], &t[1..]),
        },
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..]),
    }
}

/// Parses a `[...]` class at the start of `p`: a predicate and the number of pattern characters it used.
fn parse_class(p: &[char]) -> Option<(impl Fn(char) -> bool, usize)> {
    let mut i = 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges: Vec<(char, char)> = Vec::new();
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            break;
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            c
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = *p.get(i + 2)?;
            ranges.push((lo, hi));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    let matches = move |ch: char| ch != '/' && ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != negated;
    Some((matches, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text)
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let r = rules("# a comment\n\n   \n#secret\n");
        assert!(!r.is_excluded("a comment"));
        assert!(!r.is_excluded("#secret"));
        assert!(!r.has_exceptions());
    }

    #[test]
    fn star_stays_within_one_segment() {
        let r = rules("*.log");
        assert!(r.is_excluded("debug.log"));
        assert!(!r.is_excluded("logs/debug.log"));
        assert!(!r.is_excluded("debug.logx"));
    }

    #[test]
    fn double_star_spans_any_number_of_directories() {
        let r = rules("**/*.log");
        assert!(r.is_excluded("debug.log"));
        assert!(r.is_excluded("a/b/c/debug.log"));
        assert!(!r.is_excluded("a/b/c/debug.txt"));
        let r = rules("a/**/z");
        assert!(r.is_excluded("a/z"));
        assert!(r.is_excluded("a/b/c/z"));
        assert!(!r.is_excluded("b/z"));
        let r = rules("build/**");
        assert!(r.is_excluded("build/x/y"));
    }

    #[test]
    fn question_mark_is_one_character() {
        let r = rules("file?.txt");
        assert!(r.is_excluded("file1.txt"));
        assert!(!r.is_excluded("file12.txt"));
        assert!(!r.is_excluded("file.txt"));
    }

    #[test]
    fn a_directory_rule_covers_its_contents() {
        let r = rules("node_modules/");
        assert!(r.is_excluded("node_modules"));
        assert!(r.is_excluded("node_modules/x/index.js"));
        assert!(!r.is_excluded("src/node_modules_helper.js"));
        let r = rules("/target");
        assert!(r.is_excluded("target/debug/app"));
        assert!(!r.is_excluded("src/target"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let r = rules("*.md\n!README.md");
        assert!(r.is_excluded("CHANGES.md"));
        assert!(!r.is_excluded("README.md"));
        assert!(r.has_exceptions());
        let r = rules("!README.md\n*.md");
        assert!(r.is_excluded("README.md"));
        let r = rules("docs\n!docs/keep.txt");
        assert!(r.is_excluded("docs/other.txt"));
        assert!(!r.is_excluded("docs/keep.txt"));
    }

    #[test]
    fn paths_and_patterns_are_cleaned() {
        let r = rules("./secrets/../.env\n");
        assert!(r.is_excluded(".env"));
        assert!(r.is_excluded("./.env"));
        assert!(!rules("/").is_excluded("anything"));
    }

    #[test]
    fn character_classes_and_escapes() {
        let r = rules("[a-c]?.txt\nx[!0-9]\nlit\\*");
        assert!(r.is_excluded("b1.txt"));
        assert!(!r.is_excluded("d1.txt"));
        assert!(r.is_excluded("xa"));
        assert!(!r.is_excluded("x5"));
        assert!(r.is_excluded("lit*"));
        assert!(!r.is_excluded("litx"));
        assert!(rules("a[b").is_excluded("a[b"));
    }
}
