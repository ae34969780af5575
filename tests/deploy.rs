//! The deploy artifacts under `deploy/`, checked the way a cluster and an operator use them:
//!
//! * every kustomization renders (`kubectl kustomize`), and every rendered object, the backfill
//!   Jobs of `deploy/k8s/backfill-job.sh` and the example Secret validate offline against the
//!   Kubernetes 1.32 schema (`kubernetes-validate --strict`);
//! * the pod specs keep the contracts (security, grace period, resources, one env for all), and
//!   every Job's deadline leaves an hour for loading beside the config's waits;
//! * checkov finds nothing in `deploy/` but the findings the README justifies, and hadolint passes
//!   the Dockerfile;
//! * the CronJob's, a backfill Job's and the Indexed backfill's pods, args and env exactly as
//!   rendered (Secret and ConfigMap references resolved from the rendered objects, the config at
//!   the mount path's file name), run the built binary against a local `redis-server` and the S3
//!   test server.
//!
//! The tools come from `scripts/install-deps.sh` (a virtualenv, see [`tool`]); a missing tool
//! fails the test with what to run, it never skips.

mod common;
mod deploy {
    //! Helpers of these tests: `manifests` (tools, rendering, what a pod gets), `cluster` (the
    //! servers a rendered pod runs against).
    pub mod cluster;
    pub mod manifests;
}

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use common::*;
use deploy::cluster::{on_a_stable_day, Cluster};
use deploy::manifests::*;
use serde_json::Value;

/// Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.32.0";

/// Peak RSS measured (README, "Performance": 89-97 MiB); the memory request must cover it.
const MEASURED_PEAK_RSS_MIB: u64 = 97;

/// The kustomizations under `deploy/k8s`, by directory.
const VARIANTS: &[&str] = &["", "backfill", "backfill-indexed", "daemon"];

// ---------------------------------------------------------------------------------------------
// Rendering, schema, contracts
// ---------------------------------------------------------------------------------------------

#[test]
fn every_kustomization_renders_the_objects_it_promises() {
    let inventory = |variant: &str| -> BTreeSet<(String, String)> {
        yaml_docs(&render(variant)).iter().map(kind_name).collect()
    };
    let set = |items: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect()
    };
    let shared = [
        ("ConfigMap", "coldsync-config"),
        ("NetworkPolicy", "coldsync-deny-ingress"),
    ];
    // No Secret anywhere: an apply must never overwrite the real one with the example's values.
    assert_eq!(
        inventory(""),
        set(&[shared[0], shared[1], ("CronJob", "coldsync")])
    );
    assert_eq!(
        inventory("daemon"),
        set(&[shared[0], shared[1], ("Deployment", "coldsync-daemon")])
    );
    assert_eq!(inventory("backfill"), set(&[("Job", "coldsync-backfill")]));
    assert_eq!(
        inventory("backfill-indexed"),
        set(&[("Job", "coldsync-backfill-sharded")])
    );
    for variant in VARIANTS {
        for obj in yaml_docs(&render(variant)) {
            assert_eq!(obj["metadata"]["namespace"], "coldsync", "{obj:#}");
            assert_eq!(
                obj["metadata"]["labels"]["app.kubernetes.io/name"], "coldsync",
                "{obj:#}"
            );
        }
    }
}

#[test]
fn every_rendered_object_validates_against_the_kubernetes_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut write = |name: &str, text: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        fs::write(&path, text).unwrap();
        files.push(path);
    };
    for variant in VARIANTS {
        write(
            &format!("k8s-{}", variant.replace('/', "-")),
            &render(variant),
        );
    }
    let range = OCTOBER_BACKFILL;
    write("backfill-job", &backfill_job(&range));
    write(
        "backfill-job-sharded",
        &backfill_job(&[&range[..], &["--shards", "4", "--force"]].concat()),
    );
    write(
        "secret-example",
        &fs::read_to_string(repo().join("deploy/k8s/secret.example.yaml")).unwrap(),
    );
    let expected_objects: usize = files
        .iter()
        .map(|f| yaml_docs(&fs::read_to_string(f).unwrap()).len())
        .sum();
    let validate = |files: &[PathBuf]| {
        let mut cmd = Command::new(tool("kubernetes-validate"));
        cmd.args(["--kubernetes-version", KUBERNETES_VERSION, "--strict"])
            .args(files);
        output_within(&mut cmd, Stdio::null(), Duration::from_secs(60))
    };
    let out = validate(&files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schema validation failed:\n{}",
        dump(&out)
    );
    assert_eq!(
        stdout.matches(" passed for resource ").count(),
        expected_objects,
        "{}",
        dump(&out)
    );

    // The validator must be able to say no: an unknown field in a container fails strictly.
    let mut cronjob = yaml_docs(&render(""))
        .into_iter()
        .find(|o| o["kind"] == "CronJob")
        .unwrap();
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["bogus"] =
        true.into();
    let broken = dir.path().join("broken.json");
    fs::write(&broken, cronjob.to_string()).unwrap();
    let out = validate(&[broken]);
    assert!(
        !out.status.success(),
        "a bogus field passed:\n{}",
        dump(&out)
    );
}

/// The arguments of a backfill Job over a month, as an operator would give them.
const OCTOBER_BACKFILL: [&str; 6] = [
    "--table",
    "orders",
    "--from",
    "2026-10-01",
    "--to",
    "2026-10-31",
];

#[test]
fn every_pod_spec_keeps_the_contracts() {
    let top = yaml_docs(&render(""));
    let range = OCTOBER_BACKFILL;
    let workloads = [
        only(&top, "CronJob").clone(),
        only(&yaml_docs(&render("daemon")), "Deployment").clone(),
        only(&yaml_docs(&backfill_job(&range)), "Job").clone(),
        only(
            &yaml_docs(&backfill_job(&[&range[..], &["--shards", "3"]].concat())),
            "Job",
        )
        .clone(),
    ];
    let dockerfile = fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let image_user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile's final stage sets USER");
    let uid: u64 = image_user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    assert!(
        uid > 0 && image_user.split(':').all(|p| p.parse::<u64>().is_ok()),
        "USER {image_user}"
    );
    assert!(
        dockerfile.lines().any(|l| l.starts_with("ENTRYPOINT [\"")),
        "exec-form ENTRYPOINT"
    );

    let first_env = &container(&workloads[0])["env"];
    for obj in &workloads {
        let (kind, name) = kind_name(obj);
        let (pod, c) = (pod_spec(obj), container(obj));
        let what = format!("{kind} {name}");
        // Shutdown contract: coldsync exits within 10 s of SIGTERM; Kubernetes waits 30.
        assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{what}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
        assert_eq!(
            pod["securityContext"]["runAsUser"], uid,
            "{what}: the image's USER"
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{what}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{what}");
        let requests = mebibytes(&c["resources"]["requests"]["memory"]);
        let limit = mebibytes(&c["resources"]["limits"]["memory"]);
        assert!(
            requests >= MEASURED_PEAK_RSS_MIB && limit >= 2 * MEASURED_PEAK_RSS_MIB,
            "{what}"
        );
        assert!(c["resources"]["requests"]["cpu"].is_string(), "{what}");
        assert_eq!(
            &c["env"], first_env,
            "{what}: one environment for every coldsync pod"
        );
        assert!(!c["image"].as_str().unwrap().ends_with(":latest"), "{what}");
        if kind != "Deployment" {
            assert_eq!(pod["restartPolicy"], "Never", "{what}");
        }
    }
    let cron = &workloads[0]["spec"];
    assert_eq!(cron["concurrencyPolicy"], "Forbid");
    assert!(
        cron["timeZone"].is_string() && cron["startingDeadlineSeconds"].is_u64(),
        "{cron:#}"
    );
    let job = &cron["jobTemplate"]["spec"];
    assert!(
        job["backoffLimit"].is_u64() && job["activeDeadlineSeconds"].is_u64(),
        "{job:#}"
    );
    assert_eq!(strings(&container(&workloads[0])["args"]), ["run"]);

    let daemon = &workloads[1]["spec"];
    assert_eq!(
        (
            daemon["replicas"].as_u64(),
            daemon["strategy"]["type"].as_str()
        ),
        (Some(1), Some("Recreate"))
    );
    assert_eq!(strings(&container(&workloads[1])["args"]), ["daemon"]);

    let backfill = &workloads[2];
    assert!(
        backfill["spec"]["completionMode"].is_null(),
        "one pod: {backfill:#}"
    );
    assert_eq!(
        strings(&container(backfill)["args"]),
        [&["backfill"][..], &range[..]].concat()
    );
    assert!(
        kind_name(backfill)
            .1
            .starts_with("coldsync-backfill-orders-"),
        "{backfill:#}"
    );

    let sharded = &workloads[3]["spec"];
    assert_eq!(sharded["completionMode"], "Indexed");
    assert_eq!(
        (
            sharded["completions"].as_u64(),
            sharded["parallelism"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let args = strings(&container(&workloads[3])["args"]);
    assert_eq!(
        args,
        [&["backfill"][..], &range[..], &["--shards", "3"]].concat()
    );
}

/// Time a Job's `activeDeadlineSeconds` leaves for loading once the configured waits are spent.
const LOAD_TIME_SECS: u64 = 3600;

#[test]
fn every_job_deadline_leaves_room_for_the_configured_waits() {
    let objects = [yaml_docs(&render("")), secret_example()].concat();
    let range = OCTOBER_BACKFILL;
    let jobs = [
        only(&objects, "CronJob").clone(),
        only(&yaml_docs(&backfill_job(&range)), "Job").clone(),
        only(
            &yaml_docs(&backfill_job(&[&range[..], &["--shards", "3"]].concat())),
            "Job",
        )
        .clone(),
    ];
    for workload in &jobs {
        let (_, env) = pod_process(workload, &objects);
        let (_, text) = mounted_config(workload, &objects, &env);
        let config = coldsync::config::Config::parse(&text, &env.into_iter().collect())
            .expect("the rendered config is valid");
        let waits = config
            .tables
            .iter()
            .map(|t| (t.lease_wait + t.wait_for_partition).as_secs())
            .max()
            .unwrap();
        let spec = match workload["kind"].as_str() {
            Some("CronJob") => &workload["spec"]["jobTemplate"]["spec"],
            _ => &workload["spec"],
        };
        let deadline = spec["activeDeadlineSeconds"].as_u64().unwrap();
        assert!(
            deadline >= waits + LOAD_TIME_SECS,
            "{:?}: activeDeadlineSeconds {deadline} leaves less than {LOAD_TIME_SECS} s beside \
             lease_wait + wait_for_partition = {waits} s",
            kind_name(workload)
        );
    }
}

#[test]
fn backfill_job_script_refuses_bad_arguments() {
    for args in [
        &["--table", "orders", "--from", "2026-10-01"][..],
        &[
            "--table",
            "or\"ders",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
        ],
        &["--table", "orders", "--from", "1 Oct", "--to", "2026-10-31"],
        &[
            "--table",
            "orders",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--shards",
            "0",
        ],
        &[
            "--table",
            "orders",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--bogus",
        ],
    ] {
        let mut cmd = Command::new(repo().join("deploy/k8s/backfill-job.sh"));
        cmd.args(args).env("KUBECTL", tool("kubectl"));
        let out = output_within(&mut cmd, Stdio::null(), Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{}", dump(&out));
        assert!(
            out.stdout.is_empty(),
            "{args:?}: printed a manifest:\n{}",
            dump(&out)
        );
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

// ---------------------------------------------------------------------------------------------
// Scanners
// ---------------------------------------------------------------------------------------------

/// The check ids of the README's table of justified checkov findings.
fn justified_in_readme() -> BTreeSet<String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n#### checkov findings we accept\n")
        .nth(1)
        .expect("README has a '#### checkov findings we accept' section");
    let section = section.split("\n#").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|id| id.starts_with("CKV"))
        .map(str::to_string)
        .collect()
}

#[test]
fn checkov_finds_only_what_the_readme_justifies() {
    // --skip-download: no calls to the vendor's API (offline, and nothing leaves the machine).
    let mut cmd = Command::new(tool("checkov"));
    cmd.args([
        "--directory",
        "deploy",
        "--output",
        "json",
        "--quiet",
        "--skip-download",
    ])
    .current_dir(repo());
    let out = output_within(&mut cmd, Stdio::null(), Duration::from_secs(300));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON ({e}):\n{}", dump(&out)));
    let reports = match report {
        Value::Array(reports) => reports,
        single => vec![single],
    };
    let mut scanned = BTreeSet::new();
    let mut findings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &reports {
        let framework = r["check_type"].as_str().unwrap_or_default().to_string();
        if r["summary"]["resource_count"].as_u64().unwrap_or(0) > 0 {
            scanned.insert(framework);
        }
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = c["check_id"].as_str().unwrap().to_string();
            let at = format!(
                "{} {}",
                c["file_path"].as_str().unwrap_or(""),
                c["resource"]
            );
            findings.entry(id).or_default().push(at);
        }
    }
    for framework in ["kubernetes", "kustomize", "dockerfile"] {
        assert!(
            scanned.contains(framework),
            "checkov scanned no {framework}: {scanned:?}\n{}",
            dump(&out)
        );
    }
    let justified = justified_in_readme();
    let unjustified: BTreeMap<_, _> = findings
        .iter()
        .filter(|(id, _)| !justified.contains(*id))
        .collect();
    assert!(
        unjustified.is_empty(),
        "checkov findings neither fixed nor justified in the README: {unjustified:#?}"
    );
    let stale: Vec<_> = justified
        .iter()
        .filter(|id| !findings.contains_key(*id))
        .collect();
    assert!(
        stale.is_empty(),
        "the README justifies findings checkov no longer reports: {stale:?}"
    );
}

#[test]
fn hadolint_passes_the_dockerfile() {
    let mut cmd = Command::new(tool("hadolint"));
    cmd.arg("deploy/Dockerfile").current_dir(repo());
    let out = output_within(&mut cmd, Stdio::null(), Duration::from_secs(60));
    assert!(out.status.success(), "hadolint:\n{}", dump(&out));
}

// ---------------------------------------------------------------------------------------------
/// Partitions at the newest cold date and the two before it; order 3 is in the two newest.
fn three_cold_partitions(c: &Cluster) {
    c.partition(c.cold(0), &[1, 2, 3], "d0");
    c.partition(c.cold(1), &[3, 4, 5], "d1");
    c.partition(c.cold(2), &[6, 7], "d2");
}

/// What Redis holds once all of [`three_cold_partitions`] are loaded: order 3 from the newest.
const ALL_THREE_LOADED: [(i64, &str); 7] = [
    (1, "d0"),
    (2, "d0"),
    (3, "d0"),
    (4, "d1"),
    (5, "d1"),
    (6, "d2"),
    (7, "d2"),
];

/// Asserts that Redis holds exactly these orders, each as written by the partition `suffix` names.
fn assert_loaded(c: &Cluster, orders: &[(i64, &str)]) {
    let expected: BTreeMap<_, _> = orders.iter().map(|(id, s)| c.order(*id, s)).collect();
    assert_eq!(c.loaded(), expected);
}

#[test]
fn cronjob_container_as_rendered_loads_the_cold_partitions() {
    let objects = [yaml_docs(&render("")), secret_example()].concat();
    let cronjob = only(&objects, "CronJob");
    let scenario = |c: &Cluster| {
        three_cold_partitions(c);
        c.run(cronjob, &objects)
    };
    on_a_stable_day(&objects, scenario, |c, out| {
        assert_eq!(out.status_code, 0, "{}", out.dump());
        assert_eq!(
            out.events_named("partition_loaded").len(),
            3,
            "{}",
            out.dump()
        );
        assert_loaded(c, &ALL_THREE_LOADED);
    });
}

#[test]
fn backfill_job_as_rendered_loads_only_its_range() {
    // The Job mounts the ConfigMap of `kubectl apply -k deploy/k8s`, as in the cluster.
    let objects = [yaml_docs(&render("")), secret_example()].concat();
    let scenario = |c: &Cluster| {
        three_cold_partitions(c);
        let (from, to) = (c.cold(2).to_string(), c.cold(1).to_string());
        let job = yaml_docs(&backfill_job(&[
            "--table", &c.table, "--from", &from, "--to", &to,
        ]));
        c.run(only(&job, "Job"), &objects)
    };
    on_a_stable_day(&objects, scenario, |c, out| {
        assert_eq!(out.status_code, 0, "{}", out.dump());
        assert_loaded(c, &[(3, "d1"), (4, "d1"), (5, "d1"), (6, "d2"), (7, "d2")]);
    });
}

/// Days since 1970-01-01: what a shard's share is computed from.
fn day_number(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

#[test]
fn indexed_backfill_job_pods_as_rendered_load_the_range_between_them() {
    let objects = [yaml_docs(&render("")), secret_example()].concat();
    let shards = 3;
    let rendered = &objects;
    let scenario = |c: &Cluster| {
        three_cold_partitions(c);
        let (from, to) = (c.cold(2).to_string(), c.cold(0).to_string());
        let job = yaml_docs(&backfill_job(&[
            "--table",
            &c.table,
            "--from",
            &from,
            "--to",
            &to,
            "--shards",
            &shards.to_string(),
        ]));
        let job = only(&job, "Job");
        assert_eq!(job["spec"]["completions"], shards);
        // The pods of the Indexed Job at once, each with the index Kubernetes puts in its env.
        let pods: Vec<CliOutput> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|i| {
                    let index = i.to_string();
                    scope.spawn(move || {
                        c.run_with(job, rendered, &[("JOB_COMPLETION_INDEX", &index)])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut loaded_by = BTreeMap::new();
        for (i, pod) in pods.iter().enumerate() {
            assert_eq!(pod.status_code, 0, "shard {i}: {}", pod.dump());
            for e in pod.events_named("partition_loaded") {
                let date: NaiveDate = event_field(e, "date")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(
                    day_number(date).rem_euclid(shards),
                    i as i64,
                    "shard {i} loaded {date}"
                );
                assert!(loaded_by.insert(date, i).is_none(), "{date} loaded twice");
            }
        }
        let all: Vec<NaiveDate> = (0..3).map(|n| c.cold(n)).collect();
        assert_eq!(
            loaded_by.keys().copied().collect::<BTreeSet<_>>(),
            all.into_iter().collect()
        );
        pods.into_iter().next().unwrap()
    };
    on_a_stable_day(&objects, scenario, |c, _| {
        // The union equals what the CronJob's single run loads.
        assert_loaded(c, &ALL_THREE_LOADED);
    });
}
