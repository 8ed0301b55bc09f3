//! deploy/kubernetes/, validated offline: the StatefulSet and the Services
//! against the Kubernetes schemas built into `kubernetes-validate` (strict:
//! an unknown field fails), the ServiceMonitor against the field list of
//! prometheus-operator's CRD (tests/kubernetes/servicemonitor-fields.txt),
//! and the Helm values against the chart's own values.yaml
//! (tests/kubernetes/chart-values.yaml). The checks the schemas cannot
//! make are in tests/kubernetes/check.py.
//!
//! Needs `kubernetes-validate` (pip, with the schemas of Kubernetes 1.37
//! inside; it brings PyYAML), installed by `make deps`. A missing tool
//! fails the test; nothing is fetched while it runs.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); make deps installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn check(name: &str) -> String {
    let script = Path::new(ROOT).join("tests/kubernetes/check.py");
    run(
        Command::new("python3").arg(&script).args([name, ROOT]),
        &format!("check.py {name} (pip install pyyaml, or make deps)"),
    )
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let files = ["statefulset.yaml", "service.yaml"];
    let out = run(
        Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict"])
            .args(files.iter().map(|f| dir.join(f))),
        "kubernetes-validate (pip install kubernetes-validate, or make deps)",
    );
    // One line per resource: the StatefulSet and both Services passed.
    for resource in [
        "statefulset/pushgateway",
        "service/pushgateway ",
        "service/pushgateway-headless",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("passed") && l.contains(resource)),
            "{resource} not validated:\n{out}"
        );
    }
    assert!(!out.contains("WARN"), "{out}");
}

#[test]
fn statefulset_keeps_its_promises() {
    check("statefulset");
}

#[test]
fn servicemonitor_fields_exist_in_the_crd() {
    check("servicemonitor");
}

#[test]
fn helm_values_are_keys_of_the_chart() {
    check("values");
}
