//! The hidden kingpin flags `--completion-script-bash`, `--completion-script-zsh` and
//! `--help-man` (plus our `--completion-script-fish`) print a script or man page generated
//! from the flag definitions, and the shells and groff accept what they print.
//!
//! bash is always there; zsh, fish and groff are checked when installed, and `.ci/run`
//! installs them, so under CI a missing one fails the test.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs the binary with `args`; it must exit 0 and log nothing (the gateway did not start).
fn print(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .args(args)
        .output()
        .expect("run pushgateway");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "{args:?} logged: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs `program` with `args` and `stdin`; `None` when it is not installed (allowed only
/// outside CI).
fn run_tool(program: &str, args: &[&str], stdin: &str) -> Option<Output> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{program} is missing; .ci/run installs it"
            );
            eprintln!("skipping the {program} check: {program} is not installed");
            return None;
        }
        Err(error) => panic!("start {program}: {error}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

/// Flags every generated text must offer, and the hidden ones none may show.
const SOME_FLAGS: [&str; 4] = [
    "persistence.file",
    "web.listen-address",
    "push.disable-consistency-check",
    "log.level",
];
const HIDDEN: [&str; 2] = ["completion-script", "help-man"];

fn assert_lists_flags(what: &str, text: &str) {
    for flag in SOME_FLAGS {
        assert!(text.contains(flag), "{what} lacks {flag}:\n{text}");
    }
    for flag in HIDDEN {
        assert!(!text.contains(flag), "{what} shows the hidden {flag}");
    }
}

#[test]
fn bash_completion_parses_and_completes_flags() {
    let script = print(&["--completion-script-bash"]);
    assert!(script.contains("complete -F _pushgateway"), "{script}");
    assert_lists_flags("bash script", &script);

    let check = run_tool("bash", &["-n"], &script).expect("bash");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Source it and ask for completions as bash would on `pushgateway --persistence.<TAB>`
    // and `pushgateway --log.level <TAB>`.
    let session = format!(
        "{script}\n\
         complete_line() {{ COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=();\n\
           _pushgateway pushgateway \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\";\n\
           printf '%s\\n' \"${{COMPREPLY[@]}}\"; }}\n\
         complete_line pushgateway --persistence.\n\
         echo ---\n\
         complete_line pushgateway --log.level ''\n"
    );
    let run = run_tool("bash", &[], &session).expect("bash");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (flags, levels) = out.split_once("---\n").expect("two answers");
    assert_eq!(
        flags.lines().collect::<Vec<_>>(),
        [
            "--persistence.file",
            "--persistence.interval",
            "--persistence.start-from-readable"
        ]
    );
    assert_eq!(
        levels.lines().collect::<Vec<_>>(),
        ["debug", "info", "warn", "error"]
    );
}

#[test]
fn zsh_completion_parses() {
    let script = print(&["--completion-script-zsh"]);
    assert!(script.starts_with("#compdef pushgateway"), "{script}");
    assert_lists_flags("zsh script", &script);
    if let Some(check) = run_tool("zsh", &["-n"], &script) {
        assert!(
            check.status.success(),
            "zsh -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn fish_completion_parses_and_completes_flags() {
    let script = print(&["--completion-script-fish"]);
    assert!(script.contains("complete -c pushgateway"), "{script}");
    assert_lists_flags("fish script", &script);
    let session = format!("{script}\ncomplete -C 'pushgateway --push.'\n");
    if let Some(run) = run_tool("fish", &["--no-config"], &session) {
        let out = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let offered: Vec<&str> = out
            .lines()
            .map(|line| line.split('\t').next().unwrap_or(""))
            .collect();
        assert!(
            offered.iter().all(|flag| flag.starts_with("--push.")),
            "{out}"
        );
        for flag in [
            "--push.disable-consistency-check",
            "--push.enable-utf8-names",
            "--push.max-body-bytes",
            "--push.group-ttl",
        ] {
            assert!(offered.contains(&flag), "{flag} not offered: {out}");
        }
    }
}

#[test]
fn man_page_is_roff_that_groff_renders() {
    let page = print(&["--help-man"]);
    assert!(page.contains(".TH pushgateway 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    // roff writes the flags' dashes as `\-`.
    assert_lists_flags("man page", &page.replace("\\-", "-"));
    if let Some(render) = run_tool("groff", &["-man", "-Tascii", "-P-bou"], &page) {
        let text = String::from_utf8_lossy(&render.stdout);
        let errors = String::from_utf8_lossy(&render.stderr);
        assert!(render.status.success(), "groff: {errors}");
        assert!(!errors.contains("error"), "groff: {errors}");
        // Rendered text may hyphenate at line ends; look for flags that stay whole.
        assert!(text.contains("--log.level <LEVEL>"), "{text}");
        assert!(text.contains("--persistence.file <FILE>"), "{text}");
    }
}

#[test]
fn kingpin_no_forms_still_work_next_to_the_generators() {
    let script = print(&["--no-web.enable-lifecycle", "--completion-script-bash"]);
    assert!(script.contains("_pushgateway"));
}

#[test]
fn a_reader_that_stops_early_is_no_error() {
    // As in `pushgateway --help-man | head`: the pipe's read end is closed before anything
    // is written, so every write fails with EPIPE.
    for flag in [
        "--completion-script-bash",
        "--completion-script-zsh",
        "--completion-script-fish",
        "--help-man",
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
            .arg(flag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pushgateway");
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{flag}: {stderr}");
        assert!(stderr.is_empty(), "{flag}: {stderr}");
    }
}
