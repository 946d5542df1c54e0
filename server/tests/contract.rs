#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The API contract: schemathesis (PyPI, installed by scripts/setup-python) sends the demo
//! server what its description at /api admits and what it does not — every check, with the
//! fixed seed and bounds of schemathesis.toml — and must find nothing: every schema-valid
//! request taken, every schema-violating one refused with a 4xx, every status, content type
//! and body as described, and no server error.

mod common;

use common::{ADMIN, OPERATOR, repo, server};

/// Runs schemathesis against the shared demo server with a key; its report, after asserting
/// it found nothing.
fn schemathesis(key: &str, extra: &[&str]) -> String {
    let srv = server();
    let st = repo().join(".venv/bin/schemathesis");
    assert!(
        st.exists(),
        "{} is missing: run scripts/setup-python",
        st.display()
    );
    // a scratch working directory: nothing of the run lands in the repository
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(st)
        .current_dir(dir.path())
        .arg("--no-color")
        .arg("--config-file")
        .arg(repo().join("schemathesis.toml"))
        .args(["run", &format!("{}/api", srv.base), "--checks", "all"])
        .args(["--workers", "2"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // every case it generated passed ("N generated, N passed")
    let cases = report
        .lines()
        .find_map(|l| {
            let (generated, passed) = l.trim().split_once(" generated, ")?;
            (passed.strip_suffix(" passed")? == generated).then_some(generated.to_owned())
        })
        .unwrap_or_else(|| panic!("no tally of passed cases:\n{report}"));
    assert!(cases.parse::<u32>().unwrap() > 100, "{report}");
    report
}

/// Selected and total operations of a report.
fn operations(report: &str) -> (usize, usize) {
    report
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Operations:")?;
            let (selected, total) = rest.trim().split_once(" selected / ")?;
            Some((
                selected.parse::<usize>().ok()?,
                total.strip_suffix(" total")?.parse::<usize>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("no tally of operations:\n{report}"))
}

#[test]
fn the_server_keeps_to_its_api_description() {
    // every operational role: every operation of the description but the three endless
    // streams (the administrators' answer 403, as described)
    let report = schemathesis(OPERATOR, &[]);
    let (selected, total) = operations(&report);
    assert!(total + 1 >= common::api_operations(), "{report}");
    assert_eq!(selected, total - 3, "{report}");
    // the administrators' own operations, with their roles: keys, revocations, the audit
    // log, metrics
    let report = schemathesis(
        ADMIN,
        &["--include-tag", "access", "--include-tag", "operations"],
    );
    let (selected, _) = operations(&report);
    assert!(selected >= 10, "{report}");
}
