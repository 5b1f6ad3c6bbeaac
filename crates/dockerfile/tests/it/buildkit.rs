//! BuildKit's own unit-test corpora, run against our substitution and parser.
//!
//! The cases are in `fixtures/buildkit/` (see its README.md: where they come from and how
//! `make.py` regenerates them); this harness is ours. BuildKit is the reference: each test
//! collects every case where we disagree with it and prints them all.
//!
//! Each test allows at most `KNOWN_DISAGREEMENTS`: the disagreements we knew of when the
//! corpus was added (estimated by reading our code). These constants must go down to 0 as
//! the issue is worked on: fix a case, lower the constant to the new count, and never raise
//! it to make a failure go away.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use imgtool_dockerfile::{Command, Flag, Instruction, Kind, expand, expand_words, parse};
use serde_json::Value;

fn corpus() -> PathBuf {
    imgtool_tests::workspace().join("fixtures/buildkit")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(corpus().join(rel)).unwrap_or_else(|e| panic!("fixtures/buildkit/{rel}: {e}"))
}

/// The case names in `dir` (files NAME.Dockerfile), sorted.
fn names(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|e| panic!("fixtures/buildkit/{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".Dockerfile").map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Fail when more cases disagree than are known to; always show them all (`--nocapture`).
#[allow(clippy::print_stderr)]
fn report(what: &str, cases: usize, disagreements: &[String], known: usize) {
    let list = disagreements.join("\n");
    eprintln!("{} of {cases} BuildKit {what} cases disagree with ours:\n{list}", disagreements.len());
    assert!(
        disagreements.len() <= known,
        "{} of {cases} BuildKit {what} cases disagree with ours, more than the {known} known \
         (KNOWN_DISAGREEMENTS); every one:\n{list}",
        disagreements.len()
    );
    if disagreements.len() < known {
        eprintln!("only {} disagree now: lower KNOWN_DISAGREEMENTS from {known} to {}", disagreements.len(), disagreements.len());
    }
}

/// BuildKit's result (`None`: an error) and ours, shown, when they differ.
fn disagreement<T: PartialEq + std::fmt::Debug>(expected: &Option<T>, got: &Result<T, String>) -> Option<(String, String)> {
    match (expected, got) {
        (None, Err(_)) => None,
        (Some(want), Ok(g)) if want == g => None,
        _ => Some((
            expected.as_ref().map_or_else(|| "an error".to_string(), |w| format!("{w:?}")),
            match got {
                Ok(g) => format!("{g:?}"),
                Err(e) => format!("an error ({e})"),
            },
        )),
    }
}

/// Undo envvar.tsv's escaping: `\\`, `\t`, `\n`, `\r` and `\u{HEX}`; nothing else may follow
/// a backslash.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let rest = chars.as_str();
                let hex = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .map(|(h, _)| h)
                    .ok_or_else(|| format!("a bad \\u escape in {s:?}"))?;
                let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or_else(|| format!("a bad \\u{{{hex}}} in {s:?}"))?;
                out.push(c);
                chars = rest[hex.len() + 2..].chars();
            }
            Some(c) => return Err(format!("an unknown escape \\{c} in {s:?}")),
            None => return Err(format!("a lone backslash at the end of {s:?}")),
        }
    }
    Ok(out)
}

#[test]
fn tsv_escapes_decode() {
    assert_eq!(unescape(r"a\\b\tc\nd\re\u{7f}f\u{0}").unwrap(), "a\\b\tc\nd\re\u{7f}f\u{0}");
    assert_eq!(unescape("한국어").unwrap(), "한국어");
    for bad in [r"a\", r"\x", r"\u{zz}", r"\u{41"] {
        assert!(unescape(bad).is_err(), "{bad}");
    }
}

/// BuildKit's envVarTest: one word through ProcessWord, which `expand` stands for.
#[test]
fn buildkit_substitution_cases() {
    // Every case agrees (positional and special parameters expand to nothing, a lone
    // trailing escape is dropped): keep it so.
    const KNOWN_DISAGREEMENTS: usize = 0;
    let text = read("envvar.tsv");
    let mut env: HashMap<String, String> = HashMap::new();
    let mut cases = 0;
    let mut disagreements = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("envvar.tsv:{}", n + 1);
        if let Some(vars) = line.strip_prefix("# env:") {
            for kv in vars.split_whitespace() {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{at}: {kv:?} is not NAME=VALUE"));
                env.insert(k.to_string(), v.to_string());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (input, expected) = line.split_once('\t').unwrap_or_else(|| panic!("{at}: no tab in {line:?}"));
        let input = unescape(input).unwrap_or_else(|e| panic!("{at}: {e}"));
        let expected = match expected {
            "ERROR" => None,
            e => Some(unescape(e).unwrap_or_else(|e| panic!("{at}: {e}"))),
        };
        cases += 1;
        let got = expand(&input, '\\', &|name: &str| env.get(name).cloned()).map_err(|e| e.0);
        if let Some((want, got)) = disagreement(&expected, &got) {
            disagreements.push(format!("{at}: {input:?}: BuildKit gives {want}, we give {got}"));
        }
    }
    assert!(env.contains_key("PWD"), "envvar.tsv has no `# env:` line");
    assert!(cases >= 200, "envvar.tsv has only {cases} cases: is it complete?");
    report("substitution", cases, &disagreements, KNOWN_DISAGREEMENTS);
}

/// Our counterpart of BuildKit's ProcessWords (word splitting after substitution): the
/// words of an `EXPOSE`, which BuildKit expands with ProcessWords, each expanded by us.
fn expose_words(input: &str, env: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let df = parse(&format!("EXPOSE {input}")).map_err(|e| e.to_string())?;
    let [i] = df.instructions.as_slice() else {
        return Err(format!("{} instructions, not one EXPOSE", df.instructions.len()));
    };
    let Kind::Expose(words) = &i.kind else {
        return Err(format!("not an EXPOSE: {:?}", i.kind));
    };
    let mut out = Vec::new();
    for w in words {
        out.extend(expand_words(w, df.escape, &|name: &str| env.get(name).cloned()).map_err(|e| e.0)?);
    }
    Ok(out)
}

/// BuildKit's wordsTest: a line through ProcessWords, one list of words.
#[test]
fn buildkit_word_splitting_cases() {
    // Every case agrees (an unquoted value's whitespace splits words, quoted and escaped
    // spaces stay): keep it so.
    const KNOWN_DISAGREEMENTS: usize = 0;
    let text = read("words.jsonl");
    let mut cases = 0;
    let mut disagreements = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("words.jsonl:{}", n + 1);
        let case: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: {e}"));
        let input = case["input"].as_str().unwrap_or_else(|| panic!("{at}: no input"));
        let env: HashMap<String, String> = case["env"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no env"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_else(|| panic!("{at}: {k} is not a string")).to_string()))
            .collect();
        let expected: Option<Vec<String>> = if case["error"].as_bool() == Some(true) {
            None
        } else {
            let words = case["words"].as_array().unwrap_or_else(|| panic!("{at}: neither words nor error"));
            Some(words.iter().map(|w| w.as_str().unwrap_or_else(|| panic!("{at}: a word is not a string")).to_string()).collect())
        };
        cases += 1;
        let got = expose_words(input, &env);
        if let Some((want, got)) = disagreement(&expected, &got) {
            disagreements.push(format!("{at}: {input:?} with {env:?}: BuildKit gives {want}, we give {got}"));
        }
    }
    assert!(cases >= 20, "words.jsonl has only {cases} cases: is it complete?");
    report("word-splitting", cases, &disagreements, KNOWN_DISAGREEMENTS);
}

/// One instruction as BuildKit's parser test shows it (its AST dump): the keyword in lower
/// case, the `--flags` as written, and the arguments: a JSON form's elements, a shell
/// form's whole command as one string, ENV and LABEL as name, value pairs.
#[derive(Debug, PartialEq)]
struct Node {
    keyword: String,
    flags: Vec<String>,
    args: Vec<String>,
    /// ONBUILD's instruction.
    onbuild: Option<Box<Node>>,
}

/// A line of a parser/NAME.result file.
fn expected_node(v: &Value) -> Node {
    let strings = |key: &str| -> Vec<String> {
        v.get(key).and_then(Value::as_array).map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    let keyword = v["keyword"].as_str().unwrap().to_string();
    let mut args = strings("args");
    if keyword == "env" || keyword == "label" {
        // BuildKit's dump gives each pair a third node: "=" when written NAME=VALUE, "" for
        // the legacy NAME VALUE. We keep only the pairs, so compare only those.
        args = args.iter().enumerate().filter(|(n, _)| n % 3 != 2).map(|(_, a)| a.clone()).collect();
    }
    Node { keyword, flags: strings("flags"), args, onbuild: v.get("onbuild").map(|o| Box::new(expected_node(o))) }
}

fn flag_words(flags: &[Flag]) -> Vec<String> {
    flags
        .iter()
        .map(|f| match &f.value {
            Some(v) => format!("--{}={v}", f.name),
            None => format!("--{}", f.name),
        })
        .collect()
}

/// A JSON form's elements, or a shell form's command as one string.
fn command_words(c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => vec![s.clone()],
    }
}

fn pair_words(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()
}

/// Our instruction in BuildKit's terms.
fn our_node(i: &Instruction) -> Node {
    let onbuild = match &i.kind {
        Kind::Onbuild(inner) => Some(Box::new(our_node(inner))),
        _ => None,
    };
    let (keyword, flags, args): (&str, Vec<String>, Vec<String>) = match &i.kind {
        Kind::From { image, name, flags } => {
            let args = std::iter::once(image.clone()).chain(name.iter().flat_map(|n| ["AS".to_string(), n.clone()])).collect();
            ("from", flag_words(flags), args)
        }
        Kind::Arg(a) => {
            let args = a
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            ("arg", Vec::new(), args)
        }
        Kind::Env(p) => ("env", Vec::new(), pair_words(p)),
        Kind::Label(p) => ("label", Vec::new(), pair_words(p)),
        Kind::Run { flags, command, .. } => ("run", flag_words(flags), command_words(command)),
        Kind::Cmd(c) => ("cmd", Vec::new(), command_words(c)),
        Kind::Entrypoint(c) => ("entrypoint", Vec::new(), command_words(c)),
        Kind::Copy { add, flags, sources, dest, .. } => {
            (if *add { "add" } else { "copy" }, flag_words(flags), sources.iter().chain([dest]).cloned().collect())
        }
        Kind::Workdir(s) => ("workdir", Vec::new(), vec![s.clone()]),
        Kind::User(s) => ("user", Vec::new(), vec![s.clone()]),
        Kind::Stopsignal(s) => ("stopsignal", Vec::new(), vec![s.clone()]),
        Kind::Maintainer(s) => ("maintainer", Vec::new(), vec![s.clone()]),
        Kind::Expose(w) => ("expose", Vec::new(), w.clone()),
        Kind::Volume(w) => ("volume", Vec::new(), w.clone()),
        Kind::Healthcheck(None) => ("healthcheck", Vec::new(), vec!["NONE".to_string()]),
        Kind::Healthcheck(Some((flags, c))) => {
            ("healthcheck", flag_words(flags), std::iter::once("CMD".to_string()).chain(command_words(c)).collect())
        }
        Kind::Shell(w) => ("shell", Vec::new(), w.clone()),
        Kind::Onbuild(_) => ("onbuild", Vec::new(), Vec::new()),
    };
    Node { keyword: keyword.to_string(), flags, args, onbuild }
}

/// BuildKit's parser testfiles: each Dockerfile must parse to the instructions its result
/// file lists. A file counts once however many of its instructions differ.
#[test]
fn buildkit_parser_testfiles() {
    // Every file agrees: keep it so.
    const KNOWN_DISAGREEMENTS: usize = 0;
    // Files BuildKit's parser reads but its instruction layer refuses when building, where
    // refusing at parse time is as good (the issue says so): ours must refuse them.
    const REFUSED_LATER: [(&str, &str); 3] = [
        ("env", "ENV name='a\\'b' leaves a quote open, an error when the word is processed"),
        ("flags", "flags the instructions do not take: COPY --user, --doit; CMD --doit"),
        ("health", "HEALTHCHECK with no arguments, and of a type other than CMD or NONE"),
    ];
    let files = names("parser");
    let mut disagreements = Vec::new();
    for name in &files {
        let text = read(&format!("parser/{name}.Dockerfile"));
        let want: Vec<Node> = read(&format!("parser/{name}.result"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| expected_node(&serde_json::from_str(l).unwrap_or_else(|e| panic!("parser/{name}.result: {e}: {l}"))))
            .collect();
        let refused_later = REFUSED_LATER.iter().any(|(n, _)| n == name);
        let df = match parse(&text) {
            Ok(_) if refused_later => {
                disagreements.push(format!("parser/{name}: BuildKit refuses it when building; we parse it"));
                continue;
            }
            Err(_) if refused_later => continue,
            Ok(df) => df,
            Err(e) => {
                disagreements.push(format!("parser/{name}: BuildKit parses it into {} instructions, we refuse it: {e}", want.len()));
                continue;
            }
        };
        let got: Vec<Node> = df.instructions.iter().map(our_node).collect();
        if got != want {
            let mut msg = format!("parser/{name}: BuildKit has {} instructions, we have {}", want.len(), got.len());
            for (k, (w, g)) in want.iter().zip(&got).enumerate() {
                if w != g {
                    write!(msg, "\n    instruction {}: BuildKit {w:?}\n                   ours {g:?}", k + 1).unwrap();
                }
            }
            disagreements.push(msg);
        }
    }
    assert!(files.len() >= 30, "fixtures/buildkit/parser has only {} Dockerfiles: is it complete?", files.len());
    report("parser", files.len(), &disagreements, KNOWN_DISAGREEMENTS);
}

/// BuildKit's negative parser testfiles: each must fail to parse.
#[test]
fn buildkit_parser_negative_testfiles() {
    // Every negative file is refused (an empty or comments-only file, a JSON array that is
    // not all strings, ENV without a value): keep it so.
    const KNOWN_DISAGREEMENTS: usize = 0;
    let files = names("parser-negative");
    let mut disagreements = Vec::new();
    for name in &files {
        let text = read(&format!("parser-negative/{name}.Dockerfile"));
        if let Ok(df) = parse(&text) {
            let got: Vec<Node> = df.instructions.iter().map(our_node).collect();
            disagreements.push(format!("parser-negative/{name}: BuildKit refuses it, we parse it into {got:?}"));
        }
    }
    assert!(files.len() >= 4, "fixtures/buildkit/parser-negative has only {} Dockerfiles", files.len());
    report("negative parser", files.len(), &disagreements, KNOWN_DISAGREEMENTS);
}
