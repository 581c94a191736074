//! The deployment files in `infra/`: every file parses, the compose file and
//! the Kubernetes manifests have the parts operations rely on, and every
//! `gridstat` subcommand and flag they use exists (checked against
//! `gridstat <subcommand> --help` of the binary under test). Their security
//! defaults hold: compose publishes on 127.0.0.1 only and reads credentials
//! from `infra/.env`; every pod runs non-root with least privilege behind a
//! default-deny NetworkPolicy; credentials and Kafka SASL/TLS settings come
//! from Secrets, in a form the linked librdkafka accepts.
//!
//! `yamllint` runs too when `GRIDSTAT_TEST_YAMLLINT` names it (the test
//! script installs it from PyPI).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use gridstat_testkit::files::files_under;
use yaml_rust2::{Yaml, YamlLoader};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("infra")
}

fn gridstat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gridstat"))
}

fn yaml_files() -> Vec<PathBuf> {
    files_under(&infra())
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
    for script in files_under(&infra())
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
    for needed in ["ingest", "intake", "aggregate", "site"] {
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
    for name in ["kafka", "minio", "ingest", "intake"] {
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
    let named = |kind: &str, name: &str| -> Yaml {
        kinds[kind]
            .iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let deployment = &named("Deployment", "gridstat-ingest");
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    assert!(replicas >= 2, "several group members");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9464"));
    let pdb = &named("PodDisruptionBudget", "gridstat-ingest");
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
    // Cargo needs every workspace member's manifest to build any of them.
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap(),
    )
    .unwrap();
    for member in manifest["workspace"]["members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        assert!(
            joined
                .lines()
                .any(|l| l.trim() == format!("COPY {member} {member}")),
            "the build stage copies the workspace member {member}"
        );
    }
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

#[test]
fn compose_runs_the_intake_with_a_health_check_on_the_loopback() {
    let doc = &load_yaml(&infra().join("compose.yaml"))[0];
    let intake = merged(&doc["services"]["intake"]);
    assert!(intake["image"].as_str().unwrap().contains("gridstat"));
    assert_eq!(strings(&intake["command"]), ["intake"]);
    // The config file's [intake] table gives it brokers, listen address and
    // device table; the S3 keys come from infra/.env (the shared anchor).
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(infra().join("gridstat.toml")).unwrap()).unwrap();
    let listen: std::net::SocketAddr = config["intake"]["listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(config["intake"]["devices"]
        .as_str()
        .unwrap()
        .starts_with("s3://"));
    let environment = compose_environment(&intake);
    assert!(
        environment.iter().any(|(k, _)| k == "GRIDSTAT_CONFIG")
            && environment
                .iter()
                .any(|(k, v)| k == "AWS_ACCESS_KEY_ID" && required_variable(v).is_some()),
        "the config file and the S3 keys from infra/.env: {environment:?}"
    );
    // Published to the host's loopback only, on the port it listens on.
    let ports = strings(&intake["ports"]);
    assert!(!ports.is_empty(), "the intake publishes its port");
    for port in &ports {
        let parts: Vec<&str> = port.split(':').collect();
        assert_eq!(parts.len(), 3, "IP:HOST:CONTAINER, not {port}");
        assert_eq!(parts[0], "127.0.0.1", "{port}");
        assert_eq!(parts[2].parse::<u16>().unwrap(), listen.port(), "{port}");
    }
    // Healthy only on /healthz's 200 at that port.
    let check = strings(&intake["healthcheck"]["test"]).join(" ");
    assert!(
        check.contains("/healthz")
            && check.contains(&listen.port().to_string())
            && check.contains("200"),
        "{check}"
    );
    // It starts once the topics and the bucket of its device table exist.
    for needed in ["topics", "bucket"] {
        assert_eq!(
            intake["depends_on"][needed]["condition"].as_str(),
            Some("service_completed_successfully"),
            "the intake waits for {needed}"
        );
    }
    let grace = intake["stop_grace_period"].as_str().unwrap();
    let secs: u64 = grace.trim_end_matches('s').parse().unwrap();
    assert!(
        secs >= 40,
        "time to finish requests (30 s) and flush (10 s): {grace}"
    );
}

/// The intake on Kubernetes: a Deployment whose readiness follows
/// `/healthz`, scaled by an HPA on CPU, behind a Service and an Ingress that
/// ends TLS, reading its device table from S3, reachable only on its port.
#[test]
fn kubernetes_intake_is_probed_scaled_served_over_tls_and_fenced() {
    let docs = k8s_docs();
    let find = |kind: &str, name: &str| -> &Yaml {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let deployment = find("Deployment", "gridstat-intake");
    let template = &deployment["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    assert!(selects(&deployment["spec"]["selector"], labels));
    let container = &template["spec"]["containers"][0];
    assert_eq!(
        strings(&container["args"]).first().map(String::as_str),
        Some("intake")
    );

    // Its port, as the config file's listen address says.
    let config = configmap_config();
    let intake = &config["intake"];
    let listen: std::net::SocketAddr = intake["listen"].as_str().unwrap().parse().unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "reachable from the Service: {listen}"
    );
    let port = container["ports"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|p| p["containerPort"].as_i64() == Some(i64::from(listen.port())))
        .unwrap_or_else(|| panic!("the container declares port {}", listen.port()));
    let port_name = port["name"].as_str().unwrap();
    let probe_port = |probe: &Yaml| -> Option<i64> {
        let p = &probe["httpGet"]["port"];
        p.as_i64()
            .or_else(|| (p.as_str() == Some(port_name)).then(|| i64::from(listen.port())))
    };
    // Readiness follows /healthz (Kafka, topics, device table); liveness
    // needs only the process, so an outage elsewhere restarts nothing.
    let readiness = &container["readinessProbe"];
    assert_eq!(readiness["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(probe_port(readiness), Some(i64::from(listen.port())));
    let liveness = &container["livenessProbe"];
    assert!(liveness["httpGet"]["path"]
        .as_str()
        .is_some_and(|p| p != "/healthz"));
    assert_eq!(probe_port(liveness), Some(i64::from(listen.port())));
    // Requests (which the HPA's utilisation is a share of) and a memory limit.
    let resources = &container["resources"];
    assert!(resources["requests"]["cpu"].as_str().is_some());
    assert!(resources["requests"]["memory"].as_str().is_some());
    assert!(resources["limits"]["memory"].as_str().is_some());
    let grace = template["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        grace >= 45,
        "time to finish requests (30 s) and flush (10 s)"
    );
    // The device table is shared through S3, with the S3 keys from a Secret.
    assert!(
        intake["devices"].as_str().unwrap().starts_with("s3://"),
        "replicas share the device table"
    );
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"].as_str(),
        Some("gridstat-s3")
    );

    // The HPA owns the replica count, on CPU.
    assert!(
        deployment["spec"]["replicas"].is_badvalue(),
        "the HPA sets replicas"
    );
    let hpa = find("HorizontalPodAutoscaler", "gridstat-intake");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"].as_str(), Some("gridstat-intake"));
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap() >= 2);
    assert!(
        hpa["spec"]["maxReplicas"].as_i64().unwrap() > hpa["spec"]["minReplicas"].as_i64().unwrap()
    );
    assert!(
        hpa["spec"]["metrics"].as_vec().unwrap().iter().any(|m| {
            m["type"].as_str() == Some("Resource")
                && m["resource"]["name"].as_str() == Some("cpu")
                && m["resource"]["target"]["type"].as_str() == Some("Utilization")
        }),
        "scaled on CPU utilisation"
    );
    let pdb = find("PodDisruptionBudget", "gridstat-intake");
    assert!(selects(&pdb["spec"]["selector"], labels));

    // The Service selects the pods and reaches their port.
    let service = find("Service", "gridstat-intake");
    // A Service's selector is a plain map of labels.
    let selector = service["spec"]["selector"].as_hash().expect("a selector");
    assert!(
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| &labels[k.as_str().unwrap()] == v),
        "the Service selects the intake's pods"
    );
    let service_port = &service["spec"]["ports"][0];
    let target_port = &service_port["targetPort"];
    assert!(
        target_port.as_str() == Some(port_name)
            || target_port.as_i64() == Some(i64::from(listen.port())),
        "the Service forwards to the intake's port: {target_port:?}"
    );

    // The Ingress ends TLS for every host it serves, and sends only the
    // API to the Service: /healthz and /metrics stay inside.
    let ingress = find("Ingress", "gridstat-intake");
    let tls = ingress["spec"]["tls"]
        .as_vec()
        .expect("the Ingress has a tls section");
    let tls_hosts: BTreeSet<String> = tls.iter().flat_map(|t| strings(&t["hosts"])).collect();
    assert!(
        tls.iter().all(|t| t["secretName"].as_str().is_some()),
        "a certificate Secret"
    );
    for rule in ingress["spec"]["rules"].as_vec().unwrap() {
        let host = rule["host"].as_str().expect("rules name their host");
        assert!(tls_hosts.contains(host), "{host} is served over TLS");
        for path in rule["http"]["paths"].as_vec().unwrap() {
            let p = path["path"].as_str().unwrap();
            assert!(p.starts_with("/v1"), "only the API is public, not {p}");
            let backend = &path["backend"]["service"];
            assert_eq!(backend["name"], service["metadata"]["name"]);
            let by_name = backend["port"]["name"].as_str().is_some()
                && backend["port"]["name"] == service_port["name"];
            let by_number = backend["port"]["number"].as_i64().is_some()
                && backend["port"]["number"] == service_port["port"];
            assert!(by_name || by_number, "the Ingress uses the Service's port");
        }
    }

    // Network: in on the intake's port, out to Kafka and S3 (DNS too).
    let policies: Vec<&Yaml> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"].as_str() == Some("NetworkPolicy"))
        .filter(|p| selects(&p["spec"]["podSelector"], labels))
        .collect();
    let ports = |dir: &str| -> BTreeSet<i64> {
        policies
            .iter()
            .flat_map(|p| p["spec"][dir].as_vec().into_iter().flatten())
            .flat_map(|rule| rule["ports"].as_vec().into_iter().flatten())
            .filter_map(|p| p["port"].as_i64())
            .collect()
    };
    assert_eq!(
        ports("ingress"),
        BTreeSet::from([i64::from(listen.port())]),
        "only the intake's port is open"
    );
    let egress = ports("egress");
    for broker in intake["brokers"].as_str().unwrap().split(',') {
        let port: i64 = broker.rsplit(':').next().unwrap().parse().unwrap();
        assert!(egress.contains(&port), "Kafka {broker} allowed: {egress:?}");
    }
    let s3 = url::Url::parse(config["s3_endpoint"].as_str().unwrap()).unwrap();
    assert!(
        egress.contains(&i64::from(s3.port_or_known_default().unwrap())),
        "S3 allowed: {egress:?}"
    );
}

// --- Deployment defaults that keep strangers out -----------------------------

/// Every Kubernetes manifest (documents with a `kind`), with its file name.
fn k8s_docs() -> Vec<(String, Yaml)> {
    let mut out = Vec::new();
    for path in yaml_files()
        .iter()
        .filter(|p| p.starts_with(infra().join("k8s")))
    {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for doc in load_yaml(path) {
            if doc["kind"].as_str().is_some() {
                out.push((name.clone(), doc));
            }
        }
    }
    out
}

/// The pod template (metadata + spec) of a workload, if the document is one.
fn pod_template(doc: &Yaml) -> Option<&Yaml> {
    match doc["kind"].as_str()? {
        "Pod" => Some(doc),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&doc["spec"]["template"])
        }
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

/// Every workload's pod template, named `file/metadata.name`.
fn pod_templates(docs: &[(String, Yaml)]) -> Vec<(String, &Yaml)> {
    docs.iter()
        .filter_map(|(file, doc)| {
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            pod_template(doc).map(|t| (format!("{file}/{name}"), t))
        })
        .collect()
}

/// Containers and init containers of a pod spec.
fn containers_of(spec: &Yaml) -> Vec<&Yaml> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_vec().into_iter().flatten())
        .collect()
}

/// Whether a Kubernetes label selector selects these labels.
fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    let label = |k: &Yaml| labels[k.as_str().unwrap()].as_str();
    let by_label = selector["matchLabels"]
        .as_hash()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expression = selector["matchExpressions"]
        .as_vec()
        .into_iter()
        .flatten()
        .all(|e| {
            let have = label(&e["key"]);
            let listed = have.is_some_and(|h| strings(&e["values"]).iter().any(|v| v == h));
            match e["operator"].as_str().unwrap() {
                "In" => listed,
                "NotIn" => !listed,
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                op => panic!("unknown selector operator {op}"),
            }
        });
    by_label && by_expression
}

/// A name that holds a credential (an environment variable, a config key).
fn credential_like(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "access_key",
        "token",
        "credential",
        "sasl",
        "jaas",
        "username",
        "_user",
        "ssl.key",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The name `NAME` of a value that is exactly `${NAME:?message}`: compose
/// interpolation that fails, with a message, when the variable is unset or empty.
fn required_variable(value: &str) -> Option<&str> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    let (name, message) = inner.split_once(":?")?;
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (valid && !message.trim().is_empty()).then_some(name)
}

/// A service's environment as (name, value), from either compose form.
fn compose_environment(service: &BTreeMap<String, Yaml>) -> Vec<(String, String)> {
    match service.get("environment") {
        Some(Yaml::Hash(h)) => h
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => String::new(),
                };
                (k.as_str().unwrap().to_string(), value)
            })
            .collect(),
        Some(list) => strings(list)
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Words of shell text that hand a credential over literally: the user and
/// password of `mc alias set`, and `…password=VALUE` / `sasl.username=VALUE`
/// whose value is not a variable.
fn literal_credentials_in_shell(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.split(['\n', ';', '|', '&']) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if words[i..].starts_with(&["mc", "alias", "set"]) {
                // mc alias set ALIAS URL USER PASSWORD
                for cred in words.iter().skip(i + 5).take(2) {
                    if !cred.contains('$') {
                        found.push(format!("mc alias set … {cred}"));
                    }
                }
            }
            if let Some((key, value)) = w.split_once('=') {
                if credential_like(key) && !value.trim_matches('"').starts_with('$') {
                    found.push(w.to_string());
                }
            }
        }
    }
    found
}

/// The librdkafka settings that secure the workers' Kafka connection; they
/// come from a Secret, never from the ConfigMap.
const KAFKA_SECURITY_SETTINGS: [&str; 5] = [
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
];

/// Every Secret's keys and values (`stringData`; `data` as given), by name.
fn k8s_secrets(docs: &[(String, Yaml)]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (_, doc) in docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("Secret"))
    {
        let keys = secrets
            .entry(doc["metadata"]["name"].as_str().unwrap().to_string())
            .or_default();
        for field in ["stringData", "data"] {
            for (k, v) in doc[field].as_hash().into_iter().flatten() {
                let v = v.as_str().unwrap_or_default().to_string();
                keys.insert(k.as_str().unwrap().to_string(), v);
            }
        }
    }
    secrets
}

/// The runtime stage's user id in the Dockerfile (`USER uid[:gid]`).
fn dockerfile_uid() -> i64 {
    let text = std::fs::read_to_string(infra().join("Dockerfile")).unwrap();
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the Dockerfile sets USER");
    let uid = user.split(':').next().unwrap().trim();
    uid.parse()
        .unwrap_or_else(|_| panic!("USER {user}: a numeric uid, so Kubernetes can check it"))
}

/// The gridstat config embedded in the ConfigMap, parsed.
fn configmap_config() -> toml::Table {
    let cm = load_yaml(&infra().join("k8s/configmap.yaml"));
    let text = cm[0]["data"]["gridstat.toml"].as_str().unwrap();
    toml::from_str(text).unwrap()
}

/// Every key of a TOML table, dotted, recursively.
fn toml_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        if let toml::Value::Table(t) = v {
            toml_keys(t, &format!("{key}."), out);
        }
        out.push(key);
    }
}

#[test]
fn compose_publishes_ports_on_loopback_only() {
    let doc = &load_yaml(&infra().join("compose.yaml"))[0];
    let mut published = Vec::new();
    for (name, service) in doc["services"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let service = merged(service);
        assert_ne!(
            service.get("network_mode").and_then(Yaml::as_str),
            Some("host"),
            "{name}: host networking would expose every port it listens on"
        );
        for port in service
            .get("ports")
            .and_then(Yaml::as_vec)
            .into_iter()
            .flatten()
        {
            // Short syntax `[IP:]HOST:CONTAINER[/proto]` (IPv6 in brackets)
            // or long syntax with `host_ip`.
            let host_ip = match port {
                Yaml::Hash(_) => port["host_ip"].as_str().map(String::from),
                Yaml::String(s) => {
                    let s = s.split('/').next().unwrap();
                    if let Some(rest) = s.strip_prefix('[') {
                        rest.split_once(']').map(|(ip, _)| ip.to_string())
                    } else {
                        let parts: Vec<&str> = s.split(':').collect();
                        (parts.len() == 3).then(|| parts[0].to_string())
                    }
                }
                other => panic!(
                    "{name}: a port as a bare number publishes on every interface: {other:?}"
                ),
            };
            assert!(
                matches!(host_ip.as_deref(), Some("127.0.0.1" | "::1")),
                "{name}: port {port:?} is published on every interface; bind it to 127.0.0.1"
            );
            published.push(name.to_string());
        }
    }
    for name in ["kafka", "minio", "web", "intake"] {
        assert!(
            published.iter().any(|p| p == name),
            "{name} publishes a port (to localhost): {published:?}"
        );
    }
}

#[test]
fn compose_takes_every_credential_from_the_env_file() {
    let path = infra().join("compose.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = &load_yaml(&path)[0];
    let example = std::fs::read_to_string(infra().join(".env.example")).unwrap();
    let example: BTreeMap<&str, &str> = example
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').expect("NAME=value lines"))
        .collect();

    let mut required = BTreeSet::new();
    for (name, service) in doc["services"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        for (key, value) in compose_environment(&merged(service)) {
            if credential_like(&key) {
                let var = required_variable(&value).unwrap_or_else(|| {
                    panic!("{name}: {key} is a credential: `${{VAR:?message}}` from infra/.env, not {value:?}")
                });
                required.insert(var.to_string());
            }
        }
    }
    assert!(
        required.len() >= 2,
        "MinIO's account and the lake keys: {required:?}"
    );
    let mut texts = Vec::new();
    all_strings(doc, &mut texts);
    for text in &texts {
        let found = literal_credentials_in_shell(text);
        assert!(
            found.is_empty(),
            "literal credentials in compose: {found:?}"
        );
    }
    // Every variable compose reads is in the example, and the example's
    // placeholders are not copied into compose.
    for (i, _) in text.match_indices("${") {
        if text[..i].ends_with('$') {
            continue; // `$${…}`: the container's shell, not compose
        }
        let var: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            example.contains_key(var.as_str()),
            "compose reads {var}, which infra/.env.example does not list"
        );
    }
    for var in &required {
        let placeholder = example[var.as_str()];
        assert!(!placeholder.is_empty(), "{var} has a placeholder");
        assert!(
            !text.contains(placeholder),
            "the placeholder of {var} is written in compose.yaml"
        );
    }
    let gitignore = std::fs::read_to_string(infra().join("../.gitignore")).unwrap();
    assert!(
        gitignore.lines().any(|l| l.trim() == "/infra/.env"),
        "git ignores infra/.env"
    );
}

#[test]
fn kubernetes_pods_run_as_the_image_user_with_least_privilege() {
    let docs = k8s_docs();
    let uid = dockerfile_uid();
    let pods = pod_templates(&docs);
    assert!(
        pods.len() >= 4,
        "ingest, aggregate, site, topics: {:?}",
        pods.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    for (name, template) in pods {
        let spec = &template["spec"];
        let pod = &spec["securityContext"];
        assert!(
            pod.as_hash().is_some(),
            "{name}: the pod has a securityContext"
        );
        let mounts_tmp_from_empty_dir = |c: &Yaml| {
            c["volumeMounts"].as_vec().into_iter().flatten().any(|m| {
                m["mountPath"].as_str() == Some("/tmp")
                    && spec["volumes"]
                        .as_vec()
                        .into_iter()
                        .flatten()
                        .any(|v| v["name"] == m["name"] && v["emptyDir"].as_hash().is_some())
            })
        };
        for c in containers_of(spec) {
            let cname = format!("{name}/{}", c["name"].as_str().unwrap_or_default());
            let own = &c["securityContext"];
            assert!(
                own.as_hash().is_some(),
                "{cname}: the container has a securityContext"
            );
            // The container's value wins over the pod's.
            let effective = |key: &str| {
                if own[key].is_badvalue() {
                    &pod[key]
                } else {
                    &own[key]
                }
            };
            assert_eq!(
                effective("runAsNonRoot").as_bool(),
                Some(true),
                "{cname}: runAsNonRoot"
            );
            let run_as = effective("runAsUser").as_i64();
            assert!(
                run_as.is_some_and(|u| u > 0),
                "{cname}: a fixed non-root runAsUser, not {run_as:?}"
            );
            if c["image"].as_str().unwrap_or_default().contains("gridstat") {
                assert_eq!(run_as, Some(uid), "{cname}: the Dockerfile's user");
            }
            assert_eq!(
                effective("seccompProfile")["type"].as_str(),
                Some("RuntimeDefault"),
                "{cname}: seccompProfile RuntimeDefault"
            );
            assert_eq!(
                own["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{cname}: allowPrivilegeEscalation false"
            );
            assert_eq!(
                own["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{cname}: readOnlyRootFilesystem"
            );
            assert!(
                strings(&own["capabilities"]["drop"]).contains(&"ALL".to_string()),
                "{cname}: capabilities drop ALL"
            );
            assert!(
                mounts_tmp_from_empty_dir(c),
                "{cname}: a writable /tmp (emptyDir) on the read-only root"
            );
        }
    }
}

#[test]
fn kubernetes_network_is_denied_by_default_and_allowed_per_workload() {
    let docs = k8s_docs();
    // Every manifest is applied by the kustomization.
    let kustomization = &load_yaml(&infra().join("k8s/kustomization.yaml"))[0];
    let resources: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() != Some("Kustomization"))
        .map(|(f, _)| f.clone())
        .collect();
    assert_eq!(resources, files, "kustomization.yaml lists every manifest");

    let policies: Vec<&Yaml> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"].as_str() == Some("NetworkPolicy"))
        .collect();
    let types = |p: &Yaml| strings(&p["spec"]["policyTypes"]);
    assert!(
        policies.iter().any(|p| {
            p["spec"]["podSelector"]
                .as_hash()
                .is_some_and(|h| h.is_empty())
                && types(p).contains(&"Ingress".to_string())
                && types(p).contains(&"Egress".to_string())
                && p["spec"]["ingress"].is_badvalue()
                && p["spec"]["egress"].is_badvalue()
        }),
        "a NetworkPolicy denies all ingress and egress for every pod"
    );
    // Allow rules name their peers and ports.
    for p in &policies {
        for dir in ["ingress", "egress"] {
            for rule in p["spec"][dir].as_vec().into_iter().flatten() {
                let peers = if dir == "ingress" { "from" } else { "to" };
                assert!(
                    rule[peers].as_vec().is_some_and(|v| !v.is_empty())
                        && rule["ports"].as_vec().is_some_and(|v| !v.is_empty()),
                    "{}: every {dir} rule names its peers and ports",
                    p["metadata"]["name"].as_str().unwrap()
                );
            }
        }
    }

    // Ports each pod may reach: (protocol, port) of the egress rules of the
    // policies that select it; and ports open to it from outside.
    let allowed = |labels: &Yaml, dir: &str| -> BTreeSet<(String, i64)> {
        policies
            .iter()
            .filter(|p| selects(&p["spec"]["podSelector"], labels))
            .flat_map(|p| p["spec"][dir].as_vec().into_iter().flatten())
            .flat_map(|rule| rule["ports"].as_vec().into_iter().flatten())
            .map(|port| {
                let protocol = port["protocol"].as_str().unwrap_or("TCP").to_string();
                (protocol, port["port"].as_i64().expect("numeric ports"))
            })
            .collect()
    };
    let config = configmap_config();
    // The brokers of ingest and of the intake, which may differ.
    let kafka_ports: BTreeSet<i64> = ["ingest", "intake"]
        .iter()
        .flat_map(|section| config[*section]["brokers"].as_str().unwrap().split(','))
        .map(|b| b.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let s3 = url::Url::parse(config["s3_endpoint"].as_str().unwrap()).unwrap();
    let s3_port = i64::from(s3.port_or_known_default().unwrap());
    let secret_names = |spec: &Yaml| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in containers_of(spec) {
            for e in c["envFrom"].as_vec().into_iter().flatten() {
                out.extend(e["secretRef"]["name"].as_str().map(String::from));
            }
            for e in c["env"].as_vec().into_iter().flatten() {
                out.extend(
                    e["valueFrom"]["secretKeyRef"]["name"]
                        .as_str()
                        .map(String::from),
                );
            }
        }
        out
    };
    for (name, template) in pod_templates(&docs) {
        let labels = &template["metadata"]["labels"];
        let spec = &template["spec"];
        let egress = allowed(labels, "egress");
        assert!(
            egress.contains(&("UDP".into(), 53)),
            "{name}: DNS allowed ({egress:?})"
        );
        let uses = secret_names(spec);
        if uses.contains("gridstat-kafka") {
            for port in &kafka_ports {
                assert!(
                    egress.contains(&("TCP".into(), *port)),
                    "{name}: Kafka (port {port}) allowed ({egress:?})"
                );
            }
        }
        if uses.contains("gridstat-s3") {
            assert!(
                egress.contains(&("TCP".into(), s3_port)),
                "{name}: S3 (port {s3_port}) allowed ({egress:?})"
            );
        }
        // Only ports a container listens on are open, and only those.
        let listening: BTreeSet<i64> = containers_of(spec)
            .iter()
            .flat_map(|c| c["ports"].as_vec().into_iter().flatten())
            .filter_map(|p| p["containerPort"].as_i64())
            .collect();
        for (_, port) in allowed(labels, "ingress") {
            assert!(
                listening.contains(&port),
                "{name}: ingress allowed on {port}, where nothing listens"
            );
        }
    }
}

#[test]
fn kubernetes_credentials_and_kafka_security_come_from_secrets() {
    let docs = k8s_docs();
    let secrets = k8s_secrets(&docs);

    // No credential in the ConfigMap or in a container's literal env.
    let mut keys = Vec::new();
    toml_keys(&configmap_config(), "", &mut keys);
    let file: toml::Table =
        toml::from_str(&std::fs::read_to_string(infra().join("gridstat.toml")).unwrap()).unwrap();
    toml_keys(&file, "", &mut keys);
    for key in &keys {
        let kafka_security = KAFKA_SECURITY_SETTINGS
            .iter()
            .any(|s| key == &format!("ingest.kafka.{s}"));
        assert!(
            !credential_like(key) && !kafka_security,
            "{key} is in the config file; credentials and Kafka security belong in a Secret"
        );
    }
    for (_, doc) in docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("ConfigMap"))
    {
        for (k, _) in doc["data"].as_hash().into_iter().flatten() {
            assert!(!credential_like(k.as_str().unwrap()), "ConfigMap key {k:?}");
        }
    }
    let pods = pod_templates(&docs);
    for (name, template) in &pods {
        for c in containers_of(&template["spec"]) {
            for e in c["env"].as_vec().into_iter().flatten() {
                let var = e["name"].as_str().unwrap();
                assert!(
                    !credential_like(var) || e["value"].is_badvalue(),
                    "{name}: {var} is written in the manifest; take it from a Secret"
                );
            }
        }
    }

    // The workers: each Kafka security setting is a `-X key=$(VAR)` whose
    // variable is a key of a Secret, and the CA file is mounted from one.
    let from_secret = |c: &Yaml, var: &str| -> (String, String) {
        let entry = c["env"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str() == Some(var))
            .unwrap_or_else(|| panic!("{var} is not in the container's env"));
        let r = &entry["valueFrom"]["secretKeyRef"];
        let (secret, key) = (r["name"].as_str(), r["key"].as_str());
        let (Some(secret), Some(key)) = (secret, key) else {
            panic!("{var} is not taken from a Secret: {entry:?}");
        };
        assert!(
            secrets.get(secret).is_some_and(|s| s.contains_key(key)),
            "{var}: the Secret {secret} has no key {key}"
        );
        (secret.to_string(), key.to_string())
    };
    // The ingest workers and the intake, both Kafka clients.
    let mut vars = Vec::new();
    for workload in ["gridstat-ingest", "gridstat-intake"] {
        let (_, pod) = pods
            .iter()
            .find(|(n, _)| n.ends_with(&format!("/{workload}")))
            .unwrap_or_else(|| panic!("no workload {workload}"));
        let spec = &pod["spec"];
        let worker = &spec["containers"][0];
        let args = strings(&worker["args"]);
        let mut mine = Vec::new();
        for setting in KAFKA_SECURITY_SETTINGS {
            let at = args
                .iter()
                .position(|a| a.starts_with(&format!("{setting}=")))
                .unwrap_or_else(|| panic!("the workers get {setting} as -X {setting}=…: {args:?}"));
            assert_eq!(
                args[at.saturating_sub(1)],
                "-X",
                "{setting} is a -X setting"
            );
            let var = args[at][setting.len() + 1..]
                .strip_prefix("$(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("{setting} is $(VAR), filled from a Secret: {}", args[at])
                });
            mine.push((setting, from_secret(worker, var)));
        }
        let (ca_secret, ca_key) = &mine
            .iter()
            .find(|(s, _)| *s == "ssl.ca.location")
            .unwrap()
            .1;
        let ca_path = Path::new(&secrets[ca_secret][ca_key]);
        let mount = worker["volumeMounts"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|m| m["mountPath"].as_str().map(Path::new) == ca_path.parent())
            .unwrap_or_else(|| panic!("nothing is mounted at {}", ca_path.display()));
        let volume = spec["volumes"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let source = volume["secret"]["secretName"].as_str();
        assert!(
            source.is_some_and(|s| secrets.contains_key(s)),
            "{}: the CA file comes from a Secret",
            ca_path.display()
        );
        let file_name = ca_path.file_name().unwrap().to_str().unwrap();
        let item = volume["secret"]["items"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|i| i["path"].as_str() == Some(file_name));
        let key = item.map_or(file_name, |i| i["key"].as_str().unwrap());
        assert!(
            secrets[source.unwrap()].contains_key(key),
            "the Secret has the CA file {key}"
        );
        if vars.is_empty() {
            vars = mine;
        } else {
            assert_eq!(
                vars, mine,
                "{workload}: the same Kafka settings as the workers"
            );
        }
    }

    // The topic job connects with the same settings.
    let (_, topics) = pods
        .iter()
        .find(|(n, _)| n.ends_with("/gridstat-topics"))
        .expect("the topic job");
    let job = &topics["spec"]["containers"][0];
    for (setting, (secret, key)) in &vars {
        let (s, k) = from_secret(job, key);
        assert_eq!((&s, &k), (secret, key), "the topic job's {setting}");
    }
    let script = strings(&job["args"]).join("\n");
    assert!(
        script.contains("--command-config"),
        "kafka-topics.sh gets the client settings"
    );
}

#[test]
fn the_linked_librdkafka_accepts_the_workers_kafka_security() {
    // The workers' -X settings as the kubelet expands them from the Secret's
    // placeholders: SASL over TLS needs librdkafka built with OpenSSL.
    let docs = k8s_docs();
    let secrets = k8s_secrets(&docs);
    let pods = pod_templates(&docs);
    for workload in ["gridstat-ingest", "gridstat-intake"] {
        let (_, pod) = pods
            .iter()
            .find(|(n, _)| n.ends_with(&format!("/{workload}")))
            .unwrap_or_else(|| panic!("no workload {workload}"));
        let worker = &pod["spec"]["containers"][0];
        let value_of = |var: &str| -> String {
            let entry = worker["env"]
                .as_vec()
                .into_iter()
                .flatten()
                .find(|e| e["name"].as_str() == Some(var))
                .unwrap_or_else(|| panic!("{var} is not in the container's env"));
            let r = &entry["valueFrom"]["secretKeyRef"];
            secrets[r["name"].as_str().unwrap()][r["key"].as_str().unwrap()].clone()
        };
        let args = strings(&worker["args"]);
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", "127.0.0.1:9");
        if workload == "gridstat-ingest" {
            cfg.set("group.id", "gridstat-infra-test");
        }
        let mut set = Vec::new();
        for pair in args.windows(2).filter(|w| w[0] == "-X") {
            let (key, value) = pair[1].split_once('=').unwrap();
            let value = match value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                // The CA file is the cluster's, mounted only in the pod.
                Some(_) if key == "ssl.ca.location" => "probe".to_string(),
                Some(var) => value_of(var),
                None => value.to_string(),
            };
            cfg.set(key, &value);
            set.push(format!("{key}={value}"));
        }
        assert!(set.len() >= KAFKA_SECURITY_SETTINGS.len(), "{set:?}");
        // The workers consume, the intake produces.
        let created = if workload == "gridstat-intake" {
            cfg.create::<rdkafka::producer::BaseProducer>().map(drop)
        } else {
            cfg.create::<rdkafka::consumer::BaseConsumer>().map(drop)
        };
        if let Err(e) = created {
            panic!("librdkafka refuses the {workload} settings {set:?}: {e}");
        }
    }
}
