//! The deployment files in `infra/`: every file parses, the compose file and
//! the Kubernetes manifests have the parts operations rely on, and every
//! `gridstat` subcommand and flag they use exists (checked against
//! `gridstat <subcommand> --help` of the binary under test).
//!
//! `yamllint` runs too when `GRIDSTAT_TEST_YAMLLINT` names it (the test
//! script installs it from PyPI).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

mod common;

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("infra")
}

fn gridstat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gridstat"))
}

fn yaml_files() -> Vec<PathBuf> {
    common::files_under(&infra())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect()
}

fn load_yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A mapping with YAML merge keys (`<<: *anchor`) applied.
fn merged(node: &Yaml) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    let Some(hash) = node.as_hash() else {
        return out;
    };
    if let Some(base) = hash.get(&Yaml::String("<<".into())) {
        out.extend(merged(base));
    }
    for (k, v) in hash {
        if let Some(k) = k.as_str().filter(|k| *k != "<<") {
            out.insert(k.to_string(), v.clone());
        }
    }
    out
}

fn strings(node: &Yaml) -> Vec<String> {
    match node {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every string scalar in a document.
fn all_strings(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Yaml::Hash(h) => h.iter().for_each(|(k, v)| {
            all_strings(k, out);
            all_strings(v, out);
        }),
        _ => {}
    }
}

/// `gridstat …` invocations in shell text: the words after `gridstat` up to
/// the end of the command (`&&`, `||`, `;`, `|`, a newline).
fn invocations_in_shell(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.split(['\n', ';', '|', '&']) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // The command word: first, or after a shell keyword (`do gridstat …`).
        let at = words
            .iter()
            .position(|w| !matches!(*w, "do" | "then" | "else" | "exec" | "time" | "nohup"));
        if let Some(i) = at.filter(|&i| words[i] == "gridstat" || words[i].ends_with("/gridstat")) {
            out.push(words[i + 1..].iter().map(|s| s.to_string()).collect());
        }
    }
    out
}

/// Every `gridstat` command line in the infra files, as argument lists.
fn gridstat_invocations() -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for path in yaml_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for doc in load_yaml(&path) {
            // Containers whose image is gridstat and whose entrypoint is not
            // replaced: their command (compose) or args (k8s) are gridstat's.
            let mut containers = Vec::new();
            for service in doc["services"]
                .as_hash()
                .into_iter()
                .flat_map(|h| h.values())
            {
                containers.push(merged(service));
            }
            let mut pod_specs = vec![&doc["spec"]["template"]["spec"]];
            pod_specs.push(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]);
            for spec in pod_specs {
                for c in spec["containers"].as_vec().into_iter().flatten() {
                    containers.push(merged(c));
                }
            }
            for c in containers {
                let image = c.get("image").and_then(Yaml::as_str).unwrap_or_default();
                let own_entry = c.contains_key("entrypoint")
                    || (c.contains_key("args") && c.contains_key("command"));
                if image.contains("gridstat") && !own_entry {
                    let key = if c.contains_key("args") {
                        "args"
                    } else {
                        "command"
                    };
                    if let Some(args) = c.get(key) {
                        found.push((name.clone(), strings(args)));
                    }
                }
            }
            let mut texts = Vec::new();
            all_strings(&doc, &mut texts);
            for text in texts {
                for inv in invocations_in_shell(&text) {
                    found.push((name.clone(), inv));
                }
            }
        }
    }
    let dockerfile = std::fs::read_to_string(infra().join("Dockerfile")).unwrap();
    for line in dockerfile.lines() {
        if let Some(json) = line.strip_prefix("CMD ") {
            let args: Vec<String> = serde_json::from_str(json).unwrap();
            found.push(("Dockerfile".into(), args));
        }
    }
    found
}

#[test]
fn every_yaml_toml_and_shell_file_parses() {
    let files = yaml_files();
    assert!(files.len() >= 10, "compose and k8s manifests: {files:?}");
    for path in &files {
        assert!(!load_yaml(path).is_empty(), "{} is empty", path.display());
    }
    // The example config is valid for gridstat itself (unknown keys and bad
    // types are errors), and so is the copy in the ConfigMap.
    let mut configs = vec![(infra().join("gridstat.toml"), None)];
    let cm = load_yaml(&infra().join("k8s/configmap.yaml"));
    let embedded = cm[0]["data"]["gridstat.toml"].as_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("configmap.toml");
    std::fs::write(&copy, &embedded).unwrap();
    configs.push((copy, Some(embedded)));
    for (path, _) in &configs {
        let out = gridstat()
            .args(["--config"])
            .arg(path)
            .args(["registry"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Shell scripts at least parse.
    for script in common::files_under(&infra())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
    {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A broken config is refused with the file, line and key named.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[ingest]\nflush_interval_ms = \"soon\"\n").unwrap();
    let out = gridstat()
        .arg("--config")
        .arg(&bad)
        .arg("registry")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("bad.toml") && err.contains("line 2") && err.contains("flush_interval_ms"),
        "{err}"
    );
}

/// `gridstat ARGS` in `dir` with only the `GRIDSTAT_*` variables in `vars`
/// (none inherited from the test's environment), which must succeed or fail
/// as `ok` says; returns stderr.
fn run_in(dir: &Path, args: &[&str], vars: &[(&str, &str)], ok: bool) -> String {
    let mut cmd = gridstat();
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GRIDSTAT_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .current_dir(dir)
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.success(), ok, "{args:?} {vars:?}: {err}");
    err
}

/// Flags win over `GRIDSTAT_*` variables, variables over the config file,
/// the file over built-in defaults: ingest's `--lake` (which directory the
/// lake is created in) and site's `--threshold` (0 is refused).
#[test]
fn config_file_sits_under_variables_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("empty.ndjson"), "").unwrap();
    std::fs::write(
        dir.join("g.toml"),
        "lake = \"file-lake\"\n[site]\nthreshold = 0\n",
    )
    .unwrap();
    let ingest = ["ingest", "--from", "empty.ndjson"];
    let config = [&["--config", "g.toml"][..], &ingest].concat();
    let lakes = || {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("lake") || n == "gridstat-data")
            .collect();
        names.sort();
        names
    };
    run_in(dir, &ingest, &[], true);
    assert_eq!(lakes(), ["gridstat-data"]);
    run_in(dir, &config, &[], true);
    assert_eq!(lakes(), ["file-lake", "gridstat-data"]);
    // The file named by its variable instead of the flag.
    std::fs::remove_dir_all(dir.join("file-lake")).unwrap();
    run_in(dir, &ingest, &[("GRIDSTAT_CONFIG", "g.toml")], true);
    assert_eq!(lakes(), ["file-lake", "gridstat-data"]);
    run_in(dir, &config, &[("GRIDSTAT_LAKE", "env-lake")], true);
    assert_eq!(lakes(), ["env-lake", "file-lake", "gridstat-data"]);
    let flag = [&config[..], &["--lake", "flag-lake"]].concat();
    run_in(dir, &flag, &[("GRIDSTAT_LAKE", "env-lake")], true);
    assert_eq!(
        lakes(),
        ["env-lake", "file-lake", "flag-lake", "gridstat-data"]
    );

    // With no rollups in the lake, a site build that gets past its options
    // fails on the lake.
    let site = ["site", "--lake", "flag-lake", "--out", "site"];
    let refused = "--threshold must be at least 1";
    let no_rollups = "no rollups";
    let config = [&["--config", "g.toml"][..], &site].concat();
    assert!(run_in(dir, &site, &[], false).contains(no_rollups));
    assert!(run_in(dir, &config, &[], false).contains(refused));
    let variable = [("GRIDSTAT_SITE_THRESHOLD", "3")];
    assert!(run_in(dir, &config, &variable, false).contains(no_rollups));
    let flag = [&config[..], &["--threshold", "0"]].concat();
    assert!(run_in(dir, &flag, &variable, false).contains(refused));
}

/// A config file's unknown key is refused with the file, line and key named.
#[test]
fn an_unknown_key_in_the_config_file_is_named_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("g.toml"),
        "lake = \"l\"\n\n[site]\nthreshold = 5\nbase_ulr = \"https://x/\"\n",
    )
    .unwrap();
    let err = run_in(tmp.path(), &["--config", "g.toml", "registry"], &[], false);
    assert!(
        err.contains("g.toml") && err.contains("line 5") && err.contains("base_ulr"),
        "{err}"
    );
}

#[test]
fn every_gridstat_subcommand_and_flag_in_infra_exists() {
    let invocations = gridstat_invocations();
    let subcommands: BTreeSet<&str> = invocations
        .iter()
        .filter_map(|(_, args)| {
            args.iter()
                .find(|a| !a.starts_with('-'))
                .map(String::as_str)
        })
        .collect();
    for needed in ["ingest", "aggregate", "site"] {
        assert!(
            subcommands.contains(needed),
            "infra never runs `gridstat {needed}`: {invocations:?}"
        );
    }
    let mut help_of: BTreeMap<String, String> = BTreeMap::new();
    for (file, args) in &invocations {
        let sub = args.iter().find(|a| !a.starts_with('-')).cloned();
        let help = help_of
            .entry(sub.clone().unwrap_or_default())
            .or_insert_with(|| {
                let mut cmd = gridstat();
                cmd.args(sub.iter()).arg("--help");
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "{file}: `gridstat {}` is not a subcommand",
                    sub.as_deref().unwrap_or("")
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            });
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{file}: `gridstat {}` has no flag {flag}",
                sub.as_deref().unwrap_or("")
            );
        }
    }
}

#[test]
fn compose_runs_kraft_kafka_minio_three_workers_and_scheduled_jobs() {
    let doc = &load_yaml(&infra().join("compose.yaml"))[0];
    let services = doc["services"].as_hash().unwrap();
    let service = |name: &str| merged(&doc["services"][name]);
    let kafka = service("kafka");
    assert!(kafka["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    assert!(
        kafka["environment"]["KAFKA_PROCESS_ROLES"]
            .as_str()
            .unwrap()
            .contains("controller"),
        "KRaft: the broker is its own controller"
    );
    assert!(
        services
            .keys()
            .all(|k| !k.as_str().unwrap().contains("zookeeper")),
        "no ZooKeeper"
    );
    assert!(service("minio")["image"]
        .as_str()
        .unwrap()
        .starts_with("minio/minio"));
    let ingest = service("ingest");
    assert_eq!(ingest["deploy"]["replicas"].as_i64(), Some(3));
    for name in ["kafka", "minio", "ingest"] {
        assert!(
            service(name).contains_key("healthcheck"),
            "{name} has a health check"
        );
    }
    let topics = strings(&service("topics")["command"]).join("\n");
    assert!(topics.contains("--create") && topics.contains("--partitions 12"));
    for name in ["aggregate", "site"] {
        let script = strings(&service(name)["command"]).join("\n");
        assert!(
            script.contains(&format!("gridstat {name}")) && script.contains("sleep"),
            "{name} runs on a loop: {script}"
        );
    }
    // Named volumes: declared once, and each declared one is used.
    let declared: BTreeSet<String> = doc["volumes"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut used = BTreeSet::new();
    for name in services.keys().map(|k| k.as_str().unwrap()) {
        for v in strings(&service(name).get("volumes").cloned().unwrap_or(Yaml::Null)) {
            let source = v.split(':').next().unwrap().to_string();
            if !source.starts_with('.') && !source.starts_with('/') {
                assert!(
                    declared.contains(&source),
                    "{name}: undeclared volume {source}"
                );
                used.insert(source);
            }
        }
    }
    assert_eq!(used, declared);
}

#[test]
fn kubernetes_manifests_have_deployment_pdb_cronjobs_config_and_secret() {
    let mut kinds: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    for path in yaml_files()
        .iter()
        .filter(|p| p.starts_with(infra().join("k8s")))
    {
        for doc in load_yaml(path) {
            if let Some(kind) = doc["kind"].as_str() {
                kinds.entry(kind.to_string()).or_default().push(doc.clone());
            }
        }
    }
    let deployment = &kinds["Deployment"][0];
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    assert!(replicas >= 2, "several group members");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9464"));
    let pdb = &kinds["PodDisruptionBudget"][0];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(
            &labels[k.as_str().unwrap()],
            v,
            "the PDB selects the workers"
        );
    }
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"], kinds["Secret"][0]["metadata"]["name"],
        "S3 credentials from the Secret"
    );
    let config_volume = &deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"];
    assert_eq!(config_volume, &kinds["ConfigMap"][0]["metadata"]["name"]);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(grace >= 60, "time to flush and commit on SIGTERM");
    let cron_args: Vec<String> = kinds["CronJob"]
        .iter()
        .map(|c| {
            assert_eq!(c["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
            let spec = &c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
            strings(&spec["args"]).join(" ")
        })
        .collect();
    assert!(cron_args.iter().any(|a| a.starts_with("aggregate")));
    assert!(cron_args.iter().any(|a| a.contains("gridstat site")));
}

#[test]
fn dockerfile_is_multi_stage_small_and_non_root() {
    let text = std::fs::read_to_string(infra().join("Dockerfile")).unwrap();
    // Join continuation lines, drop comments.
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "ENV",
        "ARG",
        "LABEL",
    ];
    let mut stages = Vec::new();
    let mut last_user = None;
    for line in joined.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
        assert!(known.contains(&instr), "unknown instruction: {line}");
        match instr {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                assert!(
                    words.len() == 3 && words[1].eq_ignore_ascii_case("AS"),
                    "every stage is named: {line}"
                );
                stages.push(words[2].to_string());
                last_user = None;
            }
            "COPY" => {
                if let Some(from) = rest.strip_prefix("--from=") {
                    let stage = from.split_whitespace().next().unwrap();
                    assert!(stages.iter().any(|s| s == stage), "unknown stage {stage}");
                } else {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    for src in &words[..words.len() - 1] {
                        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
                        assert!(path.exists(), "COPY source {src} missing");
                    }
                }
            }
            "USER" => last_user = Some(rest.to_string()),
            "ENTRYPOINT" | "CMD" => {
                serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|e| panic!("{instr} in exec (JSON) form: {e}"));
            }
            _ => {}
        }
    }
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let user = last_user.expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "runtime runs as non-root, not {user}"
    );
    assert!(text.contains("-slim"), "a slim runtime base");
}

#[test]
fn yamllint_accepts_every_yaml_file() {
    let Ok(yamllint) = std::env::var("GRIDSTAT_TEST_YAMLLINT") else {
        eprintln!("skipped: GRIDSTAT_TEST_YAMLLINT not set (infra/test.sh sets it)");
        return;
    };
    let out = Command::new(yamllint)
        .args([
            "--strict",
            "-d",
            "{extends: default, rules: {line-length: {max: 160}, document-start: disable, \
             comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}",
        ])
        .args(yaml_files())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
