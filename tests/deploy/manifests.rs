//! The manifests as a cluster sees them: the deploy tools, `kubectl kustomize` output and
//! `backfill-job.sh` output parsed into JSON values, and what a pod of a rendered workload gets
//! (args, env with every reference resolved, the mounted config file).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::common::{output_within, try_output_within};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A deploy tool: `$COLDSYNC_DEPLOY_TOOLS/bin/<name>` (default `~/.cache/coldsync/deploy-tools`,
/// where `scripts/install-deps.sh` puts them), else `<name>` on `PATH`; panics if neither runs.
/// Looked up once per test binary.
pub fn tool(name: &str) -> PathBuf {
    static FOUND: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut found = FOUND.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = found.get(name) {
        return path.clone();
    }
    let venv = std::env::var_os("COLDSYNC_DEPLOY_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/coldsync/deploy-tools"))
        });
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let version_args: &[&str] = match name {
        "kubectl" => &["version", "--client"],
        _ => &["--version"],
    };
    let candidates = venv
        .map(|v| v.join("bin").join(name))
        .into_iter()
        .chain(on_path);
    for candidate in candidates.filter(|c| c.is_file()) {
        let mut cmd = Command::new(&candidate);
        cmd.args(version_args);
        let runs = try_output_within(&mut cmd, Stdio::null(), Duration::from_secs(60))
            .is_ok_and(|out| out.status.success());
        if runs {
            found.insert(name.to_string(), candidate.clone());
            return candidate;
        }
    }
    panic!("{name} is not installed: run scripts/install-deps.sh (tests/deploy.rs needs it)");
}

/// Runs `cmd` (stdin closed) within `timeout`; panics with its output unless it exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> String {
    let out = output_within(cmd, Stdio::null(), timeout);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", dump(&out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn dump(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl kustomize deploy/k8s/<variant>`, as YAML.
pub fn render(variant: &str) -> String {
    let dir = repo().join("deploy/k8s").join(variant);
    run_ok(
        Command::new(tool("kubectl")).arg("kustomize").arg(dir),
        Duration::from_secs(60),
    )
}

/// `deploy/k8s/backfill-job.sh ARGS` with the test's kubectl, as YAML.
pub fn backfill_job(args: &[&str]) -> String {
    run_ok(
        Command::new(repo().join("deploy/k8s/backfill-job.sh"))
            .args(args)
            .env("KUBECTL", tool("kubectl")),
        Duration::from_secs(60),
    )
}

/// Every document of a YAML stream, as JSON values.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("bad YAML: {e}\n{text}")))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind_name(obj: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (s(&obj["kind"]), s(&obj["metadata"]["name"]))
}

/// The one object of `kind` in `objects`.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {objects:#?}");
    found[0]
}

/// The pod spec of a CronJob, Job or Deployment.
pub fn pod_spec(obj: &Value) -> &Value {
    match obj["kind"].as_str() {
        Some("CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        Some("Job" | "Deployment") => &obj["spec"]["template"]["spec"],
        other => panic!("no pod spec in a {other:?}"),
    }
}

/// The `coldsync` container of a workload.
pub fn container(obj: &Value) -> &Value {
    let containers = pod_spec(obj)["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container: {obj:#}");
    assert_eq!(containers[0]["name"], "coldsync");
    &containers[0]
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

pub fn secret_example() -> Vec<Value> {
    let text = fs::read_to_string(repo().join("deploy/k8s/secret.example.yaml")).unwrap();
    yaml_docs(&text)
}

/// A Kubernetes quantity in MiB (`128Mi`, `1Gi`).
pub fn mebibytes(q: &Value) -> u64 {
    let q = q.as_str().expect("a quantity string");
    if let Some(n) = q.strip_suffix("Mi") {
        return n.parse().unwrap();
    }
    if let Some(n) = q.strip_suffix("Gi") {
        return n.parse::<u64>().unwrap() * 1024;
    }
    panic!("quantity {q} not in Mi or Gi");
}

/// What a pod of `workload` would get: its args, and its env with every reference resolved
/// from `objects` (ConfigMaps, the example Secret) or the pod (`metadata.name`).
pub fn pod_process(workload: &Value, objects: &[Value]) -> (Vec<String>, Vec<(String, String)>) {
    let c = container(workload);
    let args = strings(&c["args"]);
    assert!(
        args.iter().all(|a| !a.contains("$(")),
        "the test does not expand $(VAR): {args:?}"
    );
    let lookup = |kind: &str, r: &Value| -> String {
        let (name, key) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
        let obj = objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"));
        let value = match (
            kind,
            obj["stringData"][key].as_str(),
            obj["data"][key].as_str(),
        ) {
            ("Secret", Some(text), _) | ("ConfigMap", _, Some(text)) => Some(text.to_string()),
            ("Secret", None, Some(b64)) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                Some(String::from_utf8(bytes).unwrap())
            }
            _ => None,
        };
        value.unwrap_or_else(|| panic!("{kind} {name} has no key {key}"))
    };
    let env = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let from = &e["valueFrom"];
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if from["secretKeyRef"].is_object() {
                lookup("Secret", &from["secretKeyRef"])
            } else if from["configMapKeyRef"].is_object() {
                lookup("ConfigMap", &from["configMapKeyRef"])
            } else if from["fieldRef"]["fieldPath"] == "metadata.name" {
                format!("{}-test-pod", kind_name(workload).1)
            } else {
                panic!("env {name}: a source the test cannot resolve: {e}");
            };
            (name, value)
        })
        .collect();
    (args, env)
}

/// The config file a pod of `workload` reads: `(file name, text)` of the ConfigMap key mounted
/// where `COLDSYNC_CONFIG` points.
pub fn mounted_config(
    workload: &Value,
    objects: &[Value],
    env: &[(String, String)],
) -> (String, String) {
    let path = &env
        .iter()
        .find(|(k, _)| k == "COLDSYNC_CONFIG")
        .expect("COLDSYNC_CONFIG set")
        .1;
    let (dir, file) = path.rsplit_once('/').unwrap();
    let c = container(workload);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {dir}: {c:#}"));
    assert_eq!(mount["readOnly"], true, "{mount}");
    let volume = pod_spec(workload)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    let map_name = volume["configMap"]["name"]
        .as_str()
        .expect("a configMap volume");
    let map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == map_name)
        .unwrap_or_else(|| panic!("ConfigMap {map_name} not rendered"));
    let text = map["data"][file]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {map_name} has no {file}"));
    (file.to_string(), text.to_string())
}
