//! Variable substitution with BuildKit's rules (its shell lexer, `ProcessWord`): `$V`,
//! `${V}`, `${V:-default}`, `${V-default}`, `${V:+alt}`, `${V+alt}`, `${V:?message}`,
//! `${V?message}`; single quotes are literal, double quotes expand, the escape character
//! takes the next one literally; quotes are removed from the result.

/// How deep `${A:-${B:-...}}` may nest: deeper is an error, not a stack overflow.
pub const MAX_NESTING: usize = 64;
/// The longest one expanded word may be.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Why a word does not expand: an unset `${V:?message}`, a bad modifier, too deep or too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// Expand one word. `lookup` gives a variable's value (`None` when unset).
pub fn expand(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let chars: Vec<char> = word.chars().collect();
    let mut lx = Lexer { chars: &chars, pos: 0, escape, lookup, heredoc: false, depth: 0, split: false };
    lx.word(None).map_err(ExpandError)
}

/// Expand one word as BuildKit's `ProcessWords` does (for `EXPOSE`): the value of an
/// unquoted variable is split on its whitespace into several words; quoted and escaped
/// spaces stay in their word.
pub fn expand_words(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, ExpandError> {
    let chars: Vec<char> = word.chars().collect();
    let mut lx = Lexer { chars: &chars, pos: 0, escape, lookup, heredoc: false, depth: 0, split: true };
    let out = lx.word(None).map_err(ExpandError)?;
    if !out.contains(SPLIT) {
        return Ok(vec![out]);
    }
    Ok(out.split(SPLIT).filter(|w| !w.is_empty()).map(str::to_string).collect())
}

/// Marks where an unquoted value's whitespace splits words, in [`expand_words`].
const SPLIT: char = '\u{0}';

/// Expand a heredoc body as a shell would: variables, and the escape character before `$`
/// or itself; quotes are text.
pub fn expand_heredoc(body: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let chars: Vec<char> = body.chars().collect();
    let mut lx = Lexer { chars: &chars, pos: 0, escape, lookup, heredoc: true, depth: 0, split: false };
    lx.word(None).map_err(ExpandError)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Heredoc text: quotes are not special, escapes only before `$` and the escape.
    heredoc: bool,
    /// How many modifier words enclose the one being read.
    depth: usize,
    /// Mark the whitespace of unquoted values with [`SPLIT`] ([`expand_words`]).
    split: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Read until the end, or until an unquoted `stop` (the `}` closing a modifier word).
    fn word(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                return Ok(out);
            }
            if out.len() > MAX_EXPANDED {
                return Err(format!("the expansion is longer than {} MiB", MAX_EXPANDED >> 20));
            }
            self.pos += 1;
            if self.heredoc {
                match c {
                    '$' => out.push_str(&self.variable()?),
                    c if c == self.escape && matches!(self.peek(), Some(n) if n == '$' || n == self.escape) => {
                        out.push(self.next().unwrap_or(c));
                    }
                    c => out.push(c),
                }
                continue;
            }
            match c {
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                },
                '"' => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => out.push_str(&self.variable()?),
                        Some(c) if c == self.escape => match self.peek() {
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                out.push(n);
                                self.pos += 1;
                            }
                            _ => out.push(c),
                        },
                        Some(c) => out.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                },
                '$' => {
                    let value = self.variable()?;
                    if self.split && self.depth == 0 {
                        out.extend(value.chars().map(|c| if c.is_whitespace() { SPLIT } else { c }));
                    } else {
                        out.push_str(&value);
                    }
                }
                // A lone escape at the end escapes nothing and is dropped, as BuildKit does.
                c if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        match stop {
            Some(s) => Err(format!("missing {s}")),
            None if out.len() > MAX_EXPANDED => Err(format!("the expansion is longer than {} MiB", MAX_EXPANDED >> 20)),
            None => Ok(out),
        }
    }

    fn name(&mut self) -> String {
        // Positional parameters (`$1`, `$999`: all the digits) and the shell's special ones
        // (`$@ $* $# $? $- $$ $!`) are names BuildKit never sets: they expand to nothing.
        let mut name = String::new();
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                name.push(d);
                self.pos += 1;
            }
            return name;
        }
        if let Some(c) = self.peek().filter(|c| "@*#?-$!".contains(*c)) {
            self.pos += 1;
            return c.to_string();
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the variable's value, or `$` itself when no name follows.
    fn variable(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: ${ must be followed by a variable name".into());
        }
        let value = (self.lookup)(&name);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') => {
                let op = self.next().ok_or("bad substitution: unterminated ${")?;
                let arg = self.modifier_word(op)?;
                let set = value.as_deref().is_some_and(|v| !v.is_empty());
                apply(&name, op, set, value, arg)
            }
            Some(op @ ('-' | '+' | '?')) => {
                let arg = self.modifier_word(op)?;
                let set = value.is_some();
                apply(&name, op, set, value, arg)
            }
            Some(c) => Err(format!("bad substitution: unsupported modifier {c:?} in ${{{name}...}}")),
            None => Err(format!("bad substitution: ${{{name} is not closed with }}")),
        }
    }

    fn modifier_word(&mut self, op: char) -> Result<String, String> {
        if !matches!(op, '-' | '+' | '?') {
            return Err(format!("bad substitution: unsupported modifier :{op}"));
        }
        if self.depth >= MAX_NESTING {
            return Err(format!("substitutions nested more than {MAX_NESTING} deep"));
        }
        self.depth += 1;
        let w = self.word(Some('}'));
        self.depth -= 1;
        self.pos += 1;
        w
    }
}

fn apply(name: &str, op: char, set: bool, value: Option<String>, arg: String) -> Result<String, String> {
    match op {
        '-' => Ok(if set { value.unwrap_or_default() } else { arg }),
        '+' => Ok(if set { arg } else { String::new() }),
        _ if set => Ok(value.unwrap_or_default()),
        _ => Err(if arg.is_empty() { format!("{name}: is not set") } else { format!("{name}: {arg}") }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = format!("{}x{}", "${X:-".repeat(100_000), "}".repeat(100_000));
        assert!(x(&deep).unwrap_err().contains("nested more than 64"));
        let ok = format!("{}x{}", "${X:-".repeat(60), "}".repeat(60));
        assert_eq!(x(&ok).unwrap(), "x");
        let big = |n: &str| (n == "B").then(|| "b".repeat(600 << 10));
        assert!(expand("$B$B", '\\', &big).unwrap_err().0.contains("longer than 1 MiB"));
        assert_eq!(expand("$B", '\\', &big).unwrap().len(), 600 << 10);
    }

    fn x(word: &str) -> Result<String, String> {
        let vars = |n: &str| match n {
            "A" => Some("apple".to_string()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("a b".to_string()),
            _ => None,
        };
        expand(word, '\\', &vars).map_err(|e| e.0)
    }

    #[test]
    fn buildkit_rules() {
        let cases = [
            ("$A", "apple"),
            ("${A}s", "apples"),
            ("pre-$A-post", "pre-apple-post"),
            ("${NOPE:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${NOPE-dflt}", "dflt"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${NOPE:-$A}", "apple"),
            ("${NOPE:-\"a b\"}", "a b"),
            ("'$A'", "$A"),
            ("\"$A\"", "apple"),
            ("\"$SP\"", "a b"),
            ("\\$A", "$A"),
            ("\"\\$A\"", "$A"),
            ("\"a\\b\"", "a\\b"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("$1x", "x"),
            ("$999x", "x"),
            ("$001aaa", "aaa"),
            ("${999:-bbb}", "bbb"),
            ("a$@b$#c$$d$!", "abcd"),
            ("${#:-x}", "x"),
            ("hello\\", "hello"),
            ("cost: 5$", "cost: 5$"),
            ("${NOPE}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(x(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn bad_substitutions_say_why() {
        for (input, want) in [
            ("${A", "not closed"),
            ("${}", "variable name"),
            ("${A:=x}", "unsupported modifier"),
            ("${A/x/y}", "unsupported modifier"),
            ("${NOPE:?must be set}", "NOPE: must be set"),
            ("${NOPE?}", "NOPE: is not set"),
            ("'abc", "single quote"),
            ("\"abc", "double quote"),
        ] {
            let err = x(input).unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let vars = |n: &str| (n == "A").then(|| "apple".to_string());
        assert_eq!(expand_heredoc("say \"$A\" 'and' \\$A ${A}s\n", '\\', &vars).unwrap(), "say \"apple\" 'and' $A apples\n");
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand("a`$b", '`', &|_| None).unwrap(), "a$b");
        assert_eq!(expand("C:\\dir", '`', &|_| None).unwrap(), "C:\\dir");
    }
}
