//! Dockerfile syntax: directives, continuations, comments, heredocs, JSON and shell forms.
//!
//! The rules are BuildKit's (moby/buildkit `frontend/dockerfile/parser`): directives only
//! before anything else, comment lines dropped even inside a continuation, a line ending
//! in the escape character joined with the next, heredoc bodies read raw after the line
//! that names them. Words are kept as written (quotes included); substitution happens
//! when the instruction runs, with the variables in scope then.

use serde::Serialize;

use crate::error::{Error, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dockerfile {
    /// The escape character (`\` unless the `escape` directive says `` ` ``).
    pub escape: char,
    /// The `syntax` directive, if any (recorded; the built-in frontend is always used).
    pub syntax: Option<String>,
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
    /// Host files the builder API put in the build context (path, name in the context).
    #[serde(skip)]
    pub files: Vec<(std::path::PathBuf, String)>,
}

impl Dockerfile {
    /// Where each stage starts: the indexes of the `FROM` instructions.
    pub fn stage_starts(&self) -> Vec<usize> {
        self.instructions.iter().enumerate().filter(|(_, i)| matches!(i.kind, Kind::From { .. })).map(|(n, _)| n).collect()
    }
}

/// One instruction with where it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instruction {
    /// 1-based line of the keyword.
    pub line: usize,
    /// 1-based column of the keyword.
    pub column: usize,
    /// The instruction as one line (continuations joined), for history and errors.
    pub text: String,
    /// What it is.
    pub kind: Kind,
}

/// A `--name=value` option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The name without dashes.
    pub name: String,
    /// The value, if one was given.
    pub value: Option<String>,
}

/// A here-document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Its delimiter word.
    pub name: String,
    /// False when the delimiter was quoted: no substitution in the body.
    pub expand: bool,
    /// The body, with a final newline.
    pub body: String,
}

/// Exec (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    /// `["cmd", "arg"]`.
    Exec(Vec<String>),
    /// `cmd arg`, run with the image's shell.
    Shell(String),
}

/// The instructions and their arguments, words as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Kind {
    /// `FROM [--platform=P] IMAGE [AS NAME]`.
    From {
        /// The image word.
        image: String,
        /// The stage name.
        name: Option<String>,
        /// Options (`platform`).
        flags: Vec<Flag>,
    },
    /// `ARG NAME[=DEFAULT] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `ENV K=V ...` (or the legacy `ENV K V`).
    Env(Vec<(String, String)>),
    /// `LABEL K=V ...`.
    Label(Vec<(String, String)>),
    /// `RUN [--network=...] COMMAND`.
    Run {
        /// Options.
        flags: Vec<Flag>,
        /// The command; with heredocs, the shell form holds the whole script.
        command: Command,
        /// Heredocs named on the line.
        heredocs: Vec<Heredoc>,
    },
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `COPY` (`add` false) or `ADD` (`add` true).
    Copy {
        /// Whether this is `ADD`.
        add: bool,
        /// Options (`from`, `chown`, `chmod`, `link`).
        flags: Vec<Flag>,
        /// Source words; a heredoc source is `<<NAME`.
        sources: Vec<String>,
        /// Destination word.
        dest: String,
        /// Heredoc sources.
        heredocs: Vec<Heredoc>,
    },
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `EXPOSE`.
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    Stopsignal(String),
    /// `HEALTHCHECK [opts] CMD ...` or `HEALTHCHECK NONE` (`None`).
    Healthcheck(Option<(Vec<Flag>, Command)>),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `ONBUILD INSTRUCTION`.
    Onbuild(Box<Instruction>),
    /// `MAINTAINER` (deprecated; sets the author).
    Maintainer(String),
}

/// The instruction keywords this parser knows.
pub const KEYWORDS: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "LABEL",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "COPY",
    "ADD",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
];

/// Parse Dockerfile text.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Directives: `# key=value` lines at the very top.
    while i < lines.len() {
        let Some(rest) = lines[i].trim_start().strip_prefix('#') else { break };
        let Some((k, v)) = rest.split_once('=') else { break };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k.contains(char::is_whitespace) || k.is_empty() {
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(Error::parse(i + 1, 1, format!("the escape directive takes \\ or `, not {v:?}"))),
                }
            }
            "syntax" => syntax = Some(v.to_string()),
            _ => {}
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let (start, column) = (i, line.len() - trimmed.len() + 1);
        // Join continuation lines; comment and empty lines inside are dropped.
        let mut joined = String::new();
        let mut cur = trimmed.to_string();
        loop {
            match strip_continuation(&cur, escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    loop {
                        if i >= lines.len() {
                            break;
                        }
                        let t = lines[i].trim_start();
                        if t.starts_with('#') || lines[i].trim().is_empty() {
                            i += 1;
                            continue;
                        }
                        break;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i].to_string();
                }
                None => {
                    joined.push_str(&cur);
                    i += 1;
                    break;
                }
            }
        }
        let (instruction, consumed) = instruction(&joined, start + 1, column, escape, &lines[i..])?;
        i += consumed;
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        return Err(Error::parse(1, 1, "the file has no instructions"));
    }
    Ok(Dockerfile { escape, syntax, instructions, files: Vec::new() })
}

/// The line without its trailing escape character, when it continues on the next line.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    let head = t.strip_suffix(escape)?;
    // An escaped escape character (`\\`) does not continue the line.
    let run = head.chars().rev().take_while(|&c| c == escape).count();
    (run % 2 == 0).then_some(head)
}

/// Parse one joined instruction line; heredoc bodies are read from `rest`. Returns the
/// instruction and how many lines of `rest` it consumed.
fn instruction(joined: &str, line: usize, column: usize, escape: char, rest: &[&str]) -> Result<(Instruction, usize)> {
    let at = |msg: String| Error::parse(line, column, msg);
    let joined = joined.trim_end();
    let (word, args) = match joined.find(char::is_whitespace) {
        Some(p) => (&joined[..p], joined[p..].trim_start()),
        None => (joined, ""),
    };
    let keyword = word.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(at(format!("unknown instruction {word:?}; expected one of {}", KEYWORDS.join(", "))));
    }
    let mut consumed = 0;
    let mut text = joined.to_string();
    let kind = match keyword.as_str() {
        "FROM" => {
            let (flags, args) = flags(args);
            let words: Vec<&str> = args.split_whitespace().collect();
            match words.as_slice() {
                [image] => Kind::From { image: image.to_string(), name: None, flags },
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    Kind::From { image: image.to_string(), name: Some(name.to_ascii_lowercase()), flags }
                }
                _ => return Err(at("FROM takes an image and an optional `AS name`".into())),
            }
        }
        "ARG" => {
            let words = split_words(args, escape).map_err(at)?;
            if words.is_empty() {
                return Err(at("ARG needs a name".into()));
            }
            Kind::Arg(
                words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            )
        }
        "ENV" | "LABEL" => {
            let pairs = name_values(args, escape, &keyword).map_err(at)?;
            if keyword == "ENV" { Kind::Env(pairs) } else { Kind::Label(pairs) }
        }
        "RUN" => {
            let (flags, args) = flags(args);
            let heredocs = heredocs(args, escape, rest, &mut consumed).map_err(at)?;
            let only_heredoc = heredocs.len() == 1 && args.split_whitespace().count() == 1;
            let command = if heredocs.is_empty() {
                command(args).map_err(at)?
            } else if only_heredoc {
                // `RUN <<EOF` alone: the body is the script (BuildKit's rule). A `#!` line
                // names its interpreter, which gets the rest with -c.
                let body = &heredocs[0].body;
                match body.strip_prefix("#!").and_then(|b| b.split_once('\n')) {
                    Some((interp, rest)) => {
                        let mut words: Vec<String> = interp.split_whitespace().map(str::to_string).collect();
                        words.push("-c".into());
                        words.push(rest.to_string());
                        Command::Exec(words)
                    }
                    None => Command::Shell(body.clone()),
                }
            } else {
                // The shell reads the heredocs itself: hand it the line and the bodies.
                let script = format!("{args}\n{}\n", rest[..consumed].join("\n"));
                text = format!("{joined}\n{}", rest[..consumed].join("\n"));
                Command::Shell(script)
            };
            if matches!(&command, Command::Shell(s) if s.trim().is_empty()) {
                return Err(at("RUN needs a command".into()));
            }
            Kind::Run { flags, command, heredocs }
        }
        "CMD" | "ENTRYPOINT" => {
            if let (flags, _) = flags(args)
                && let Some(f) = flags.first()
            {
                return Err(at(format!("{keyword} takes no flags, so --{} is an error (as in BuildKit)", f.name)));
            }
            let c = command(args).map_err(at)?;
            if keyword == "CMD" { Kind::Cmd(c) } else { Kind::Entrypoint(c) }
        }
        "COPY" | "ADD" => {
            let (flags, args) = flags(args);
            let heredocs = heredocs(args, escape, rest, &mut consumed).map_err(at)?;
            if consumed > 0 {
                text = format!("{joined}\n{}", rest[..consumed].join("\n"));
            }
            let words = match json_array(args).map_err(at)? {
                Some(w) => w,
                None => args.split_whitespace().map(str::to_string).collect(),
            };
            let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
                return Err(at(format!("{keyword} needs at least one source and a destination")));
            };
            Kind::Copy { add: keyword == "ADD", flags, sources: sources.to_vec(), dest: dest.clone(), heredocs }
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            if args.is_empty() {
                return Err(at(format!("{keyword} needs an argument")));
            }
            let a = args.to_string();
            match keyword.as_str() {
                "WORKDIR" => Kind::Workdir(a),
                "USER" => Kind::User(a),
                "STOPSIGNAL" => Kind::Stopsignal(a),
                _ => Kind::Maintainer(a),
            }
        }
        "EXPOSE" | "VOLUME" => {
            let words = match json_array(args).map_err(at)? {
                Some(w) if keyword == "VOLUME" => w,
                // Quotes and escapes stay in the words; EXPOSE's are expanded as BuildKit's
                // ProcessWords does, a space in quotes or escaped staying in its word.
                _ if keyword == "EXPOSE" => split_words(args, escape).map_err(at)?,
                _ => args.split_whitespace().map(str::to_string).collect(),
            };
            if words.is_empty() {
                return Err(at(format!("{keyword} needs at least one argument")));
            }
            if keyword == "EXPOSE" { Kind::Expose(words) } else { Kind::Volume(words) }
        }
        "HEALTHCHECK" => {
            let (flags, args) = flags(args);
            let (word, rest_args) = match args.find(char::is_whitespace) {
                Some(p) => (&args[..p], args[p..].trim_start()),
                None => (args, ""),
            };
            match word.to_ascii_uppercase().as_str() {
                "NONE" if rest_args.is_empty() && flags.is_empty() => Kind::Healthcheck(None),
                "CMD" if !rest_args.is_empty() => Kind::Healthcheck(Some((flags, command(rest_args).map_err(at)?))),
                _ => return Err(at("HEALTHCHECK takes [OPTIONS] CMD command, or NONE".into())),
            }
        }
        "SHELL" => match json_array(args).map_err(at)? {
            Some(w) if !w.is_empty() => Kind::Shell(w),
            _ => return Err(at("SHELL takes a JSON array, like SHELL [\"/bin/sh\", \"-c\"]".into())),
        },
        "ONBUILD" => {
            let inner_word = args.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            if matches!(inner_word.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(at(format!("ONBUILD cannot trigger {inner_word}")));
            }
            let (inner, used) = instruction(args, line, column + (joined.len() - args.len()), escape, rest)?;
            consumed = used;
            Kind::Onbuild(Box::new(inner))
        }
        _ => return Err(at(format!("unknown instruction {word:?}"))),
    };
    Ok((Instruction { line, column, text, kind }, consumed))
}

/// Leading `--name[=value]` options and what follows them.
fn flags(args: &str) -> (Vec<Flag>, &str) {
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            // A bare `--` ends the flags, and is not an argument (as in BuildKit).
            if f.is_empty() || f.starts_with(char::is_whitespace) {
                rest = f.trim_start();
            }
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.to_string(), None),
        };
        out.push(Flag { name, value });
        rest = f[end..].trim_start();
    }
    (out, rest)
}

/// A JSON array of strings, if `args` is one; text that is not JSON is not one. Valid JSON
/// that is not an array of strings is an error, as in BuildKit (never silently shell form).
fn json_array(args: &str) -> std::result::Result<Option<Vec<String>>, String> {
    if !args.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(args) else { return Ok(None) };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            other => Err(format!("a JSON array of arguments must hold strings only, not {other}")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

/// Exec form when the arguments are a JSON array of strings, else shell form.
fn command(args: &str) -> std::result::Result<Command, String> {
    Ok(match json_array(args)? {
        Some(w) => Command::Exec(w),
        None => Command::Shell(args.to_string()),
    })
}

/// Split on unquoted whitespace, keeping quotes and escapes in the words (BuildKit's
/// `parseWords`): values are unquoted when they are substituted.
pub(crate) fn split_words(s: &str, escape: char) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                word.push(c);
            }
            Some(q) if c == q => {
                quote = None;
                word.push(c);
            }
            _ if c == escape && quote != Some('\'') => {
                word.push(c);
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            _ => word.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote in {s:?}"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// `K=V K2="v 2"` pairs, or the legacy single `K V...` form.
fn name_values(args: &str, escape: char, keyword: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let words = split_words(args, escape)?;
    let Some(first) = words.first() else { return Err(format!("{keyword} needs at least one KEY=VALUE")) };
    if !first.contains('=') {
        // Legacy form: the first word is the key and the rest of the line the value.
        let key = first.clone();
        let value = args.trim_start()[first.len()..].trim().to_string();
        if value.is_empty() {
            return Err(format!("{keyword} {key} needs a value (write {key}=VALUE)"));
        }
        return Ok(vec![(key, value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{keyword} expects KEY=VALUE pairs; {w:?} is not one")),
        })
        .collect()
}

/// The heredocs named on `args` (words `<<NAME`, `<<-NAME`, `<<"NAME"`), with bodies read
/// from `rest`; `consumed` counts the lines used.
fn heredocs(args: &str, escape: char, rest: &[&str], consumed: &mut usize) -> std::result::Result<Vec<Heredoc>, String> {
    let mut out = Vec::new();
    for w in split_words(args, escape).unwrap_or_default() {
        // `<<` inside a word (`cat<<EOF`) counts too, as in a shell.
        let Some(pos) = w.find("<<") else { continue };
        let mut d = &w[pos + 2..];
        if d.starts_with('<') {
            continue; // a here-string `<<<`
        }
        let strip_tabs = d.starts_with('-');
        if strip_tabs {
            d = &d[1..];
        }
        let quoted = d.starts_with('"') || d.starts_with('\'');
        let name: String = d.chars().filter(|c| *c != '"' && *c != '\'').collect();
        let name = name.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.')).next().unwrap_or_default().to_string();
        if name.is_empty() {
            continue;
        }
        let mut body = String::new();
        let mut found = false;
        while *consumed < rest.len() {
            let line = rest[*consumed];
            *consumed += 1;
            let line = if strip_tabs { line.trim_start_matches('\t') } else { line };
            if line == name {
                found = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        if !found {
            return Err(format!("the heredoc <<{name} is not closed: no line with just {name} follows"));
        }
        out.push(Heredoc { name, expand: !quoted, body });
    }
    Ok(out)
}
