//! Writing Dockerfiles from code, the way docker-map's `DockerFile` does, and building
//! them directly.

use std::path::{Path, PathBuf};

use crate::parse::{Command, Dockerfile, Instruction, Kind};

/// `"text"` with the characters that would end or escape it escaped; `$` is left alone so
/// values may refer to variables.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if c == '\n' {
            out.push_str("\\n");
            continue;
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn json(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_else(|_| "[]".into())
}

impl Dockerfile {
    /// A Dockerfile starting `FROM image`.
    pub fn from_image(image: &str) -> Self {
        let d = Dockerfile { escape: '\\', syntax: None, instructions: Vec::new(), files: Vec::new() };
        d.push(format!("FROM {image}"), Kind::From { image: image.to_string(), name: None, flags: Vec::new() })
    }

    fn push(mut self, text: String, kind: Kind) -> Self {
        let line = self.instructions.len() + 1;
        self.instructions.push(Instruction { line, column: 1, text, kind });
        self
    }

    /// `RUN command` (shell form).
    pub fn run(self, command: &str) -> Self {
        let command = command.replace('\n', " ");
        self.push(format!("RUN {command}"), Kind::Run { flags: Vec::new(), command: Command::Shell(command), heredocs: Vec::new() })
    }

    /// `ENV key="value"`.
    pub fn env(self, key: &str, value: &str) -> Self {
        let v = quote(value);
        self.push(format!("ENV {key}={v}"), Kind::Env(vec![(key.to_string(), v)]))
    }

    /// `LABEL "key"="value"`.
    pub fn label(self, key: &str, value: &str) -> Self {
        let (k, v) = (quote(key), quote(value));
        self.push(format!("LABEL {k}={v}"), Kind::Label(vec![(k, v)]))
    }

    /// `ARG name[=default]`.
    pub fn arg(self, name: &str, default: Option<&str>) -> Self {
        let text = match default {
            Some(d) => format!("ARG {name}={d}"),
            None => format!("ARG {name}"),
        };
        self.push(text, Kind::Arg(vec![(name.to_string(), default.map(str::to_string))]))
    }

    /// `WORKDIR path`.
    pub fn workdir(self, path: &str) -> Self {
        self.push(format!("WORKDIR {path}"), Kind::Workdir(path.to_string()))
    }

    /// `USER user[:group]`.
    pub fn user(self, user: &str) -> Self {
        self.push(format!("USER {user}"), Kind::User(user.to_string()))
    }

    /// `EXPOSE port[/proto]`.
    pub fn expose(self, port: &str) -> Self {
        self.push(format!("EXPOSE {port}"), Kind::Expose(vec![port.to_string()]))
    }

    /// `VOLUME ["path"]`.
    pub fn volume(self, path: &str) -> Self {
        let words = vec![path.to_string()];
        self.push(format!("VOLUME {}", json(&words)), Kind::Volume(words))
    }

    /// `CMD [...]` (exec form).
    pub fn cmd<S: Into<String>>(self, args: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> = args.into_iter().map(Into::into).collect();
        self.push(format!("CMD {}", json(&words)), Kind::Cmd(Command::Exec(words)))
    }

    /// `ENTRYPOINT [...]` (exec form).
    pub fn entrypoint<S: Into<String>>(self, args: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> = args.into_iter().map(Into::into).collect();
        self.push(format!("ENTRYPOINT {}", json(&words)), Kind::Entrypoint(Command::Exec(words)))
    }

    /// `COPY src dest` of a path inside the build context.
    pub fn copy(self, src: &str, dest: &str) -> Self {
        let words = vec![src.to_string(), dest.to_string()];
        let kind =
            Kind::Copy { add: false, flags: Vec::new(), sources: vec![src.to_string()], dest: dest.to_string(), heredocs: Vec::new() };
        self.push(format!("COPY {}", json(&words)), kind)
    }

    /// Copy a host file or directory to `dest`: it is made part of the build context (as
    /// docker-map's `add_file` puts it in the context tarball) and copied with `COPY`.
    pub fn add_file(mut self, src: impl AsRef<Path>, dest: &str) -> Self {
        let src = src.as_ref();
        let base = src.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let name = format!("files/{}-{base}", self.files.len());
        self.files.push((src.to_path_buf(), name.clone()));
        self.copy(&name, dest)
    }

    /// The Dockerfile text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.escape != '\\' {
            out.push_str(&format!("# escape={}\n", self.escape));
        }
        for i in &self.instructions {
            out.push_str(&i.text);
            out.push('\n');
        }
        out
    }

    /// Host files [`Dockerfile::add_file`] put in the build context, with their names there.
    pub fn context_files(&self) -> &[(PathBuf, String)] {
        &self.files
    }
}
