//! The docs cannot drift from the binary or from each other: every flag of every `wgtrain … --help` has a
//! row in `docs/cli.md` and every row there is a flag of that command; every doc is linked from the README;
//! every relative link in the README and `docs/` points at a file (and heading) that exists.

mod common;

use common::cli::ok;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The subcommands `wgtrain --help` lists, `help` left out.
fn commands() -> Vec<String> {
    let help = ok(&["--help"]);
    let listed: Vec<String> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect();
    assert!(listed.len() >= 9, "too few commands in --help:\n{help}");
    listed
}

/// The long flags of one command's `--help`, `--help` itself left out.
fn help_flags(command: &str) -> BTreeSet<String> {
    ok(&[command, "--help"])
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-h, ").unwrap_or(line);
            let flag = line.strip_prefix("--")?;
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(format!("--{name}"))
        })
        .filter(|flag| flag != "--help")
        .collect()
}

/// `docs/cli.md`'s sections: each `## wgtrain CMD` heading with the flags in the first column of its
/// tables (`| \`--flag VALUE\` | …`).
fn doc_sections(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some(command) = heading.strip_prefix("wgtrain ") {
                sections.push((command.trim().to_string(), BTreeSet::new()));
            } else {
                sections.push((String::new(), BTreeSet::new()));
            }
            continue;
        }
        let Some((command, flags)) = sections.last_mut() else {
            continue;
        };
        if command.is_empty() {
            continue;
        }
        let Some(cell) = line.strip_prefix("| `--") else {
            continue;
        };
        let name: String = cell
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(
            flags.insert(format!("--{name}")),
            "docs/cli.md lists --{name} twice under wgtrain {command}"
        );
    }
    sections.retain(|(command, _)| !command.is_empty());
    sections
}

#[test]
fn every_flag_of_every_command_is_in_the_cli_doc_and_the_reverse() {
    let doc = read(&repo().join("docs/cli.md"));
    let sections = doc_sections(&doc);
    let documented: Vec<&str> = sections.iter().map(|(c, _)| c.as_str()).collect();
    let commands = commands();
    assert_eq!(
        documented, commands,
        "docs/cli.md's `## wgtrain CMD` sections against the commands of `wgtrain --help`"
    );
    for (command, doc_flags) in &sections {
        let help = help_flags(command);
        let missing: Vec<_> = help.difference(doc_flags).collect();
        let extra: Vec<_> = doc_flags.difference(&help).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "wgtrain {command}: in --help but not in docs/cli.md: {missing:?}; in docs/cli.md but not in --help: {extra:?}"
        );
    }
}

#[test]
fn the_doc_parser_sees_a_missing_and_an_extra_flag() {
    // The check above must be able to fail: a section without one of train's flags, and one with a flag
    // train does not have.
    let doc = "## wgtrain train\n\n| flag | what |\n|---|---|\n| `--data PATH` | x |\n| `--bogus` | y |\n\n## Other\n| `--not-a-command-flag` | z |\n";
    let sections = doc_sections(doc);
    assert_eq!(sections.len(), 1);
    let (command, flags) = &sections[0];
    assert_eq!(command, "train");
    let help = help_flags("train");
    assert!(help.contains("--data") && help.contains("--epochs"));
    assert!(!help.is_superset(flags), "--bogus is not a flag of train");
    assert!(!flags.is_superset(&help), "the section lacks --epochs");
}

/// Relative link targets in Markdown (`](target)`), without their `#heading` part.
fn links(text: &str) -> Vec<(String, Option<String>)> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:"))
        .map(|target| match target.split_once('#') {
            Some((file, anchor)) => (file.to_string(), Some(anchor.to_string())),
            None => (target.to_string(), None),
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            !in_code
        })
        .filter_map(|line| {
            line.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| line.starts_with('#'))
        })
        .map(anchor)
        .collect()
}

#[test]
fn every_doc_is_linked_from_the_readme_and_every_link_resolves() {
    let root = repo();
    let readme = read(&root.join("README.md"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 10, "docs/ has {} Markdown files", docs.len());
    let readme_links: BTreeSet<String> = links(&readme).into_iter().map(|(f, _)| f).collect();
    for doc in &docs {
        let name = format!("docs/{}", doc.file_name().unwrap().to_string_lossy());
        assert!(
            readme_links.contains(&name),
            "README.md does not link {name}"
        );
    }
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    files.extend(docs);
    for file in &files {
        let text = read(file);
        let dir = file.parent().expect("a folder");
        for (target, heading) in links(&text) {
            let path = if target.is_empty() {
                file.clone()
            } else {
                dir.join(&target)
            };
            assert!(
                path.exists(),
                "{}: the link to {target} points at nothing",
                file.display()
            );
            if let (Some(heading), Some("md")) =
                (heading, path.extension().and_then(|e| e.to_str()))
            {
                assert!(
                    anchors(&read(&path)).contains(&heading),
                    "{}: the link {target}#{heading} names no heading of {}",
                    file.display(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_anchor_rule_matches_githubs() {
    assert_eq!(anchor("wgtrain verify"), "wgtrain-verify");
    assert_eq!(
        anchor("Starting from another file: --init"),
        "starting-from-another-file---init"
    );
    assert_eq!(anchor("The GL backend"), "the-gl-backend");
}
