use globset::GlobMatcher;

use crate::Error;

/// Patterns in `.dockerignore` syntax: `*`, `?`, `[...]`, `**`, and `!` to re-include;
/// the last pattern that matches a path (or one of its parent directories) decides.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    rules: Vec<(GlobMatcher, bool)>,
}

impl PathFilter {
    /// Build from patterns; a pattern starting with `!` re-includes.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Error> {
        let mut rules = Vec::new();
        for p in patterns {
            let raw = p.as_ref().trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (negate, pat) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, raw),
            };
            let cleaned = crate::store::clean(pat);
            if cleaned.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Pattern { pattern: raw.to_string(), source: e })?;
            rules.push((glob.compile_matcher(), !negate));
        }
        Ok(Self { rules })
    }

    /// Parse a `.dockerignore` file's text.
    pub fn from_dockerignore(text: &str) -> Result<Self, Error> {
        let lines: Vec<&str> = text.lines().collect();
        Self::new(&lines)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is matched: the last matching pattern wins,
    /// and a pattern matching a parent directory matches everything below it.
    pub fn matches(&self, path: &str) -> bool {
        let mut matched = false;
        for (glob, include) in &self.rules {
            if matches_or_parent(glob, path) {
                matched = *include;
            }
        }
        matched
    }

    /// Whether a later `!` pattern could re-include something below `dir` (so a matched
    /// directory still has to be walked).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, include)| !include)
    }
}

fn matches_or_parent(glob: &GlobMatcher, path: &str) -> bool {
    glob.is_match(path) || path.match_indices('/').any(|(i, _)| glob.is_match(&path[..i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_semantics() {
        let f = PathFilter::new(&["target/", "**/*.pyc", "*.md", "!README.md", "/docs/**/draft*"]).unwrap();
        assert!(f.matches("target"));
        assert!(f.matches("target/debug/x"));
        assert!(f.matches("a/b/c.pyc"));
        assert!(f.matches("x.pyc"));
        assert!(f.matches("NOTES.md"));
        assert!(!f.matches("README.md"));
        assert!(!f.matches("sub/NOTES.md"), "* does not cross /");
        assert!(f.matches("docs/a/b/draft1.txt"));
        assert!(!f.matches("src/main.rs"));
        assert!(f.has_exceptions());
        assert!(PathFilter::new(&["a[".to_string()]).is_err());
    }
}
