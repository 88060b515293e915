//! The images a Dockerfile pulls (pure): every `FROM` and `COPY --from`
//! that names an image rather than an earlier stage, with the line it is
//! on, after expanding the global `ARG`s the way the builder does. What
//! cannot be resolved here is refused: Berth never lets the builder pull
//! an image it could not check.

use std::collections::BTreeMap;

/// Largest Dockerfile read (Docker sets none; real ones are a few KiB).
pub const MAX_DOCKERFILE: usize = 256 * 1024;
/// Longest a value may grow by expansion: `ARG B=$A$A`, `ARG C=$B$B`, …
/// doubles at every line, a billion laughs in forty lines.
pub const MAX_EXPANDED: usize = 64 * 1024;
/// All global `ARG` values together: many values just under
/// [`MAX_EXPANDED`] must not add up to gigabytes either.
pub const MAX_ARGS_TOTAL: usize = 1024 * 1024;

/// An image the build would pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// 1-based line of the instruction.
    pub line: u32,
    pub image: String,
}

/// Why the Dockerfile cannot be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DockerfileError {
    pub line: u32,
    pub message: String,
}

fn err(line: u32, message: impl Into<String>) -> DockerfileError {
    DockerfileError {
        line,
        message: message.into(),
    }
}

/// Instructions with the line each starts on, read as Docker's parser
/// reads them (moby's `parser.Parse`): a UTF-8 byte-order mark before the
/// first line is dropped; `# escape=` (and other `# name=value` parser
/// directives) count only before anything else; a line ending in the
/// escape character continues onto the next, whose text is appended as it
/// stands; comment lines and empty lines inside a continuation are
/// skipped. Reading it any other way would let a `FROM` or `COPY --from`
/// hide from the check while dockerd acts on it.
fn instructions(text: &str) -> Result<Vec<(u32, String)>, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let mut directives = true;
    let mut out = Vec::new();
    let mut current: Option<(u32, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = (i + 1) as u32;
        let left = raw.trim_start();
        if directives {
            if let Some((name, value)) = directive(left) {
                if name.eq_ignore_ascii_case("escape") {
                    escape = match value {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(err(line, format!("invalid escape token `{other}`")));
                        }
                    };
                }
                continue;
            }
            directives = false;
        }
        if left.starts_with('#') || left.trim_end().is_empty() {
            continue;
        }
        let text = match current {
            // The first line of an instruction loses its indentation; a
            // continuation line is appended as it is.
            None => left.trim_end(),
            Some(_) => raw.trim_end(),
        };
        let (body, continues) = match text.strip_suffix(escape) {
            Some(b) => (b, true),
            None => (text, false),
        };
        current
            .get_or_insert_with(|| (line, String::new()))
            .1
            .push_str(body);
        if !continues && let Some(done) = current.take() {
            out.push(done);
        }
    }
    out.extend(current);
    Ok(out)
}

/// A parser directive line: `# name=value`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let (name, value) = rest.split_once('=')?;
    let name = name.trim_end();
    let first = name.chars().next()?;
    (first.is_ascii_alphabetic() && name.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| (name, value.trim()))
        .filter(|(_, v)| !v.is_empty())
}

/// Expands `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}`;
/// anything else with a `$` is refused.
fn expand(
    text: &str,
    args: &BTreeMap<String, String>,
    line: u32,
) -> Result<String, DockerfileError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| err(line, format!("unclosed variable in `{text}`")))?;
            let body = &inner[..end];
            let value = if let Some((name, default)) = body.split_once(":-") {
                args.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            } else if let Some((name, alt)) = body.split_once(":+") {
                match args.get(name).filter(|v| !v.is_empty()) {
                    Some(_) => alt.to_string(),
                    None => String::new(),
                }
            } else if is_name(body) {
                args.get(body).cloned().unwrap_or_default()
            } else {
                return Err(err(line, format!("cannot resolve `${{{body}}}`")));
            };
            out.push_str(&value);
            rest = &inner[end + 1..];
            if out.len() > MAX_EXPANDED {
                return Err(too_long(line));
            }
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                return Err(err(line, format!("cannot resolve the `$` in `{text}`")));
            }
            out.push_str(args.get(&after[..len]).map(String::as_str).unwrap_or(""));
            rest = &after[len..];
            if out.len() > MAX_EXPANDED {
                return Err(too_long(line));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn too_long(line: u32) -> DockerfileError {
    err(
        line,
        format!(
            "a variable expands to more than {} KiB (Berth's limit)",
            MAX_EXPANDED / 1024
        ),
    )
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The images `text` pulls, given the build args Berth passes.
pub fn base_images(
    text: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<BaseImage>, DockerfileError> {
    if text.len() > MAX_DOCKERFILE {
        return Err(err(
            1,
            format!(
                "the Dockerfile is over {} KiB (Berth's limit)",
                MAX_DOCKERFILE / 1024
            ),
        ));
    }
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let mut held = 0usize;
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut seen_from = false;
    for (line, instruction) in instructions(text)? {
        let mut words = instruction.split_whitespace();
        let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
        let rest: Vec<&str> = words.collect();
        match keyword.as_str() {
            "ARG" if !seen_from => {
                for decl in &rest {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n, Some(d.trim_matches('"'))),
                        None => (*decl, None),
                    };
                    let value = match build_args.get(name) {
                        Some(v) => v.clone(),
                        None => expand(default.unwrap_or(""), &global, line)?,
                    };
                    held += value.len();
                    if let Some(old) = global.insert(name.to_string(), value) {
                        held -= old.len();
                    }
                    if held > MAX_ARGS_TOTAL {
                        return Err(err(
                            line,
                            format!(
                                "the ARG values add up to more than {} KiB (Berth's limit)",
                                MAX_ARGS_TOTAL / 1024
                            ),
                        ));
                    }
                }
            }
            "FROM" => {
                seen_from = true;
                let args: Vec<&str> = rest
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (image, alias) = match args.as_slice() {
                    [image] => (*image, None),
                    [image, as_kw, alias] if as_kw.eq_ignore_ascii_case("as") => {
                        (*image, Some(*alias))
                    }
                    _ => return Err(err(line, format!("cannot read `{instruction}`"))),
                };
                let image = expand(image, &global, line)?;
                if image.is_empty() {
                    return Err(err(line, "FROM names no image"));
                }
                let lower = image.to_ascii_lowercase();
                if lower != "scratch" && !stages.contains(&lower) {
                    out.push(BaseImage { line, image });
                }
                stages.push(alias.map(str::to_ascii_lowercase).unwrap_or_default());
            }
            "COPY" | "ADD" => {
                for flag in rest.iter().take_while(|w| w.starts_with("--")) {
                    let Some(from) = flag.strip_prefix("--from=") else {
                        continue;
                    };
                    if from.contains('$') {
                        return Err(err(line, "variables in `--from` are not supported"));
                    }
                    let lower = from.to_ascii_lowercase();
                    let is_stage = stages.contains(&lower)
                        || lower.parse::<usize>().is_ok_and(|n| n < stages.len());
                    if !is_stage {
                        out.push(BaseImage {
                            line,
                            image: from.to_string(),
                        });
                    }
                }
            }
            "ONBUILD" => {
                return Err(err(line, "ONBUILD is not supported in builds"));
            }
            _ => {}
        }
    }
    if !seen_from {
        return Err(err(1, "the Dockerfile has no FROM"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(text: &str, args: &[(&str, &str)]) -> Result<Vec<(u32, String)>, DockerfileError> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        base_images(text, &args).map(|v| v.into_iter().map(|b| (b.line, b.image)).collect())
    }

    #[test]
    fn a_from_is_found_wherever_dockers_parser_finds_it() {
        let evil = "evil.example/x".to_string();
        // A byte-order mark before the first instruction.
        assert_eq!(
            images("\u{feff}FROM evil.example/x\n", &[]),
            Ok(vec![(1, evil.clone())])
        );
        // With a backtick as the escape, a trailing backslash continues nothing.
        let escaped = "# escape=`\nFROM busybox\nRUN echo \\\nFROM evil.example/x\n";
        assert_eq!(
            images(escaped, &[]),
            Ok(vec![(2, "busybox".into()), (4, evil.clone())])
        );
        // ...and a backtick does.
        let backtick = "# escape=`\nFROM busybox\nRUN echo `\nFROM evil.example/x\n";
        assert_eq!(images(backtick, &[]), Ok(vec![(2, "busybox".into())]));
        // A directive after the first instruction is a comment.
        let late = "FROM busybox\n# escape=`\nRUN echo \\\nFROM evil.example/x\n";
        assert_eq!(images(late, &[]), Ok(vec![(1, "busybox".into())]));
        // Empty and comment lines inside a continuation are skipped.
        let gap = "FROM busybox\nCOPY \\\n\n# note\n   \n--from=evil.example/x /a /b\n";
        assert_eq!(
            images(gap, &[]),
            Ok(vec![(1, "busybox".into()), (2, evil.clone())])
        );
        // A continuation is appended as it stands, without a space.
        assert_eq!(
            images("FROM evil.exa\\\nmple/x\n", &[]),
            Ok(vec![(1, evil)])
        );
        assert!(images("# escape=x\nFROM busybox\n", &[]).is_err());
    }

    #[test]
    fn args_that_double_at_every_line_stop_at_the_bound() {
        // 2^60 bytes if nothing stopped it.
        let mut text = String::from("ARG A0=xxxxxxxxxxxxxxxx\n");
        for i in 1..=60 {
            text.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        text.push_str("FROM busybox\n");
        let e = images(&text, &[]).expect_err("refused");
        assert!(e.message.contains("expands to more than 64 KiB"), "{e}");
        assert!(e.line <= 14, "stopped early, at line {}", e.line);
        // Many values each under the bound, adding up past the total.
        let mut wide = String::from("ARG A0=xxxxxxxxxxxxxxxx\n");
        for i in 1..=12 {
            wide.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        for i in 0..40 {
            wide.push_str(&format!("ARG B{i}=${{A12}}\n"));
        }
        wide.push_str("FROM busybox\n");
        let e = images(&wide, &[]).expect_err("refused");
        assert!(e.message.contains("add up to more than 1024 KiB"), "{e}");
        let huge = format!("FROM busybox\n{}", "#\n".repeat(MAX_DOCKERFILE));
        assert!(
            images(&huge, &[])
                .expect_err("refused")
                .message
                .contains("over 256 KiB")
        );
    }

    #[test]
    fn stages_are_not_images_and_copy_from_an_image_is() {
        let text = "# syntax comment\nFROM reg/alice/base:1 AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /out\nCOPY --from=0 /a /a\nCOPY --chown=1:1 --from=reg/bob/x:2 /b /b\n";
        assert_eq!(
            images(text, &[]).expect("parsed"),
            vec![(2, "reg/alice/base:1".into()), (7, "reg/bob/x:2".into())]
        );
    }

    #[test]
    fn global_args_expand_with_build_args_winning() {
        let text = "ARG REG=reg\nARG IMG=${REG}/alice/py\nARG PY\nFROM $IMG:${PY:-3.11} as base\nFROM base\n";
        assert_eq!(
            images(text, &[]).expect("parsed"),
            vec![(4, "reg/alice/py:3.11".into())]
        );
        assert_eq!(
            images(text, &[("PY", "3.12"), ("REG", "other")]).expect("parsed"),
            vec![(4, "other/alice/py:3.12".into())]
        );
    }

    #[test]
    fn continuations_keep_the_first_line_and_case_does_not_matter() {
        let text = "from \\\n  reg/bob/secret:1\n";
        assert_eq!(
            images(text, &[]).expect("parsed"),
            vec![(1, "reg/bob/secret:1".into())]
        );
    }

    #[test]
    fn what_cannot_be_checked_is_refused() {
        for (text, line) in [
            ("FROM ${X?boom}\n", 1),
            ("FROM x\nCOPY --from=$X /a /a\n", 2),
            ("FROM x\nONBUILD RUN true\n", 2),
            ("RUN true\n", 1),
            ("FROM\n", 1),
            ("ARG X\nFROM $X\n", 2),
        ] {
            let e = images(text, &[]).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
        }
    }
}
