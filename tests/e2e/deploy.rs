//! The files under `deploy/`, checked by the tools their users run: the Prometheus alerts by
//! `promtool` (rules and their unit tests), the systemd unit by `systemd-analyze verify`, the
//! Grafana dashboard's shape, and every hubsync metric the alerts and the dashboard query by
//! scraping a running `hubsync run`; the Kubernetes manifests by `kubernetes-validate` (the
//! API's JSON schemas, offline) and the compose file by `docker-compose config` and the
//! compose-spec schema (`check-jsonschema`), each shown refusing a broken copy, and both by what
//! they must agree on with the service files they carry (`hubsync config check`, probes, ports,
//! volumes, secrets). `make setup` installs promtool (Debian's `prometheus`), systemd-analyze,
//! docker-compose, and kubernetes-validate and check-jsonschema in a virtualenv under `.tools/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ChangeKind, SchemaKind};
use serde_json::Value;

mod support;
use support::world::World;
use support::{Child, events};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Runs a tool; its status and what it printed.
fn tool(program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("{program} cannot run ({error}); `make setup` installs it"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_alerts_are_valid_rules_and_fire_as_their_tests_say() {
    let dir = deploy("prometheus");
    let (ok, out) = tool("promtool", &["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = tool("promtool", &["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("systemd/hubsync.service")).expect("the unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/hubsync run "),
        "{unit}"
    );
    // Verified as installed, with the binary where this build put it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hubsync.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/hubsync", env!("CARGO_BIN_EXE_hubsync")),
    )
    .expect("unit written");
    let (ok, out) = tool(
        "systemd-analyze",
        &["verify", path.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(ok, "systemd-analyze verify:\n{out}");
    assert!(
        !out.contains("hubsync.service"),
        "systemd-analyze has something to say about the unit:\n{out}"
    );
}

/// The `hubsync_*` metric names in PromQL expressions.
fn metric_names<'a>(exprs: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = exprs
        .flat_map(|expr| {
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("hubsync_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `hubsync_*` metrics the alerts' expressions query.
fn alert_metrics() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts");
    metric_names(
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("expr:")),
    )
}

/// The dashboard's queries, checked for the shape Grafana imports: panels with unique ids, each
/// with queries on the dashboard's Prometheus data source variable.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/hubsync.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "hubsync");
    assert!(
        dashboard["templating"]["list"]
            .as_array()
            .is_some_and(|vars| vars
                .iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource")),
        "a data source variable"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = std::collections::HashSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_i64().expect("a panel id")),
            "{panel}"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "a panel without a query: {panel}");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
            exprs.push(target["expr"].as_str().expect("a query").to_string());
        }
    }
    assert!(panels.len() >= 8, "{} panels", panels.len());
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let mut wanted = alert_metrics();
    assert!(wanted.len() >= 6, "{wanted:?}");
    let exprs = dashboard_exprs();
    wanted.extend(metric_names(exprs.iter().map(String::as_str)));
    wanted.sort();
    wanted.dedup();
    let port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |c| {
        c.replace(
            "[state]\n",
            &format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n[state]\n"),
        )
    })
    .await;
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let mut child = Child::spawn_with_env(
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)],
    );
    // A contact written and a message that cannot be decoded, so the counters have series.
    let topic = world.config.topics.contact_changes.clone();
    let event = events::contact("ct_1", Some("ada@acme.io"), ChangeKind::Created);
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &event)
        .await;
    world.publish_raw(&topic, "ct_2", b"not avro").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let missing = loop {
        let scraped = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| {
                !scraped
                    .lines()
                    .any(|line| !line.starts_with('#') && line.starts_with(name.as_str()))
            })
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    child.kill();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?} (of {wanted:?})"
    );
}

// ------------------------------------------------------------------------------------------------
// Kubernetes (deploy/kubernetes) and compose (deploy/compose).

/// A validator `make setup` installs in the virtualenv under `.tools/`.
fn venv_tool(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/venv/bin")
        .join(name)
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// The documents of a YAML file as JSON, read by PyYAML (the parser of kubernetes-validate, in
/// the same virtualenv); empty documents are left out.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  with open(sys.argv[1]) as f:\n    \
                  print(json.dumps([d for d in yaml.safe_load_all(f) if d is not None]))";
    let output = Command::new(venv_tool("python3"))
        .args(["-c", script, path.to_str().expect("utf-8 path")])
        .output()
        .unwrap_or_else(|error| {
            panic!("python3 of .tools/venv cannot run ({error}); `make setup` installs it")
        });
    assert!(
        output.status.success(),
        "{} is not YAML:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout).expect("PyYAML's documents as JSON") {
        Value::Array(documents) => documents,
        other => panic!("not a list of documents: {other}"),
    }
}

/// Runs the `hubsync` binary this build made, without the environment overrides of
/// `kafka.brokers`, `registry.url` and `hubspot.base_url`; its status, stdout and stderr.
fn hubsync(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(args)
        .env_remove("HUBSYNC_KAFKA_BROKERS")
        .env_remove("HUBSYNC_REGISTRY_URL")
        .env_remove("HUBSYNC_HUBSPOT_URL")
        .output()
        .expect("the hubsync binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `hubsync config check --json FILE` on a service file: the report, after checking that it
/// and every team file of its directory are valid and that it serves `teams`.
fn config_check_service(file: &Path, teams: &[&str]) -> Value {
    let (ok, out, err) = hubsync(&[
        "config",
        "check",
        "--json",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "hubsync config check {}:\n{out}{err}", file.display());
    let report: Value = serde_json::from_str(&out).expect("config check --json prints JSON");
    assert_eq!(report["valid"], true, "{report:#}");
    let served: Vec<&str> = report["teams"]
        .as_array()
        .expect("a service file's team reports")
        .iter()
        .map(|team| {
            assert_eq!(team["valid"], true, "a team file is refused: {team:#}");
            team["summary"]["team"].as_str().expect("the team's id")
        })
        .collect();
    assert_eq!(served, teams, "the teams the service file serves");
    report
}

/// Every `{ file = ".." }` and `{ env = ".." }` secret reference of a TOML file.
fn secret_references(value: &toml::Value, files: &mut Vec<String>, envs: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) if table.len() == 1 && table.contains_key("file") => {
            files.push(table["file"].as_str().expect("a file path").to_string());
        }
        toml::Value::Table(table) if table.len() == 1 && table.contains_key("env") => {
            envs.push(table["env"].as_str().expect("a variable").to_string());
        }
        toml::Value::Table(table) => table
            .values()
            .for_each(|value| secret_references(value, files, envs)),
        toml::Value::Array(values) => values
            .iter()
            .for_each(|value| secret_references(value, files, envs)),
        _ => {}
    }
}

/// `path` with its `..` and `.` resolved, as the kernel would for directories that exist.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The Kubernetes versions whose API schemas the manifests are validated against: the oldest
/// the manifests are meant for and the newest kubernetes-validate carries.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The manifests: every YAML file of `deploy/kubernetes` but the kustomization.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "yaml")
                && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    files
}

/// Validates manifests with `kubernetes-validate --strict` (a field the schema does not know is
/// an error) against each of [`KUBERNETES_VERSIONS`]: the number of resources, or why not. A kind
/// the schemas do not know is only a warning to kubernetes-validate, so a warning fails here, and
/// so does a document it did not report as passed.
fn kubernetes_validate(files: &[PathBuf]) -> Result<usize, String> {
    let documents: usize = files.iter().map(|file| yaml_documents(file).len()).sum();
    let dir = files[0].parent().expect("a directory");
    for version in KUBERNETES_VERSIONS {
        let mut args = vec!["--strict", "--kubernetes-version", version];
        args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
        let (ok, out) = tool(&venv_tool("kubernetes-validate"), &args, dir);
        let passed = out
            .lines()
            .filter(|line| line.contains(" passed for resource "))
            .count();
        if !ok || out.contains("WARN") || out.contains("ERROR") || passed != documents {
            return Err(format!(
                "kubernetes-validate against {version}: {passed} of {documents} resources passed:\n{out}"
            ));
        }
    }
    Ok(documents)
}

/// Every document of the manifests.
fn manifests() -> Vec<Value> {
    manifest_files()
        .iter()
        .flat_map(|file| yaml_documents(file))
        .collect()
}

fn resource<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

/// A key of a ConfigMap: a file its pods read.
fn configmap_file(documents: &[Value], name: &str, key: &str) -> String {
    resource(documents, "ConfigMap", name)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no {key}"))
        .to_string()
}

/// The three workloads, by stage: the process Deployment, the sink and inbound StatefulSets.
fn workloads(documents: &[Value]) -> [(&'static str, &Value); 3] {
    [
        (
            "process",
            resource(documents, "Deployment", "hubsync-process"),
        ),
        ("sink", resource(documents, "StatefulSet", "hubsync-sink")),
        (
            "inbound",
            resource(documents, "StatefulSet", "hubsync-inbound"),
        ),
    ]
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// The `hubsync` container of a workload.
fn container(workload: &Value) -> &Value {
    pod_spec(workload)["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "hubsync")
        .unwrap_or_else(|| panic!("no hubsync container in {}", workload["metadata"]["name"]))
}

/// Where a container mounts a volume.
fn mount_path<'a>(container: &'a Value, volume: &str) -> Option<&'a str> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == volume)?["mountPath"]
        .as_str()
}

/// The volume a container mounts at `path`, by name.
fn volume_at<'a>(container: &'a Value, path: &str) -> Option<&'a str> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"] == path)?["name"]
        .as_str()
}

fn pod_volume<'a>(workload: &'a Value, name: &str) -> Option<&'a Value> {
    pod_spec(workload)["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// The container's arguments.
fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string argument"))
        .collect()
}

/// A container's port by name.
fn named_port<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// A Service's port whose `targetPort` is the container port `name` (by name or number).
fn service_port_to<'a>(service: &'a Value, name: &str, number: u64) -> Option<&'a Value> {
    service["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["targetPort"] == name || p["targetPort"] == number)
}

/// The argument after `flag`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// The service file of the `hubsync-config` ConfigMap, parsed.
fn kubernetes_service_file(documents: &[Value]) -> toml::Table {
    configmap_file(documents, "hubsync-config", "hubsync.toml")
        .parse()
        .expect("the ConfigMap's hubsync.toml is TOML")
}

/// Whether `selector` (a matchLabels map) selects the workload's pods.
fn selects(selector: &Value, workload: &Value) -> bool {
    let labels = &workload["spec"]["template"]["metadata"]["labels"];
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn the_kubernetes_manifests_pass_the_api_schemas() {
    let files = manifest_files();
    assert!(files.len() >= 6, "manifests: {files:?}");
    let resources = kubernetes_validate(&files).unwrap_or_else(|why| panic!("{why}"));
    // ServiceAccount, two ConfigMaps, two Secrets, Deployment, two StatefulSets (sink, inbound),
    // three Services, three PDBs.
    assert!(resources >= 14, "{resources} resources");
}

#[test]
fn kubernetes_validate_refuses_broken_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |name: &str, file: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(deploy("kubernetes").join(file)).expect(file);
        assert!(text.contains(from), "{file} has no {from:?} to break");
        let path = dir.path().join(name);
        std::fs::write(&path, text.replacen(from, to, 1)).expect("the copy");
        path
    };
    // A copy passes as it is, so a refusal below is the break's doing.
    let intact = copy("sink.yaml", "sink.yaml", "", "");
    assert_eq!(kubernetes_validate(&[intact]), Ok(3));
    let intact = copy("inbound.yaml", "inbound.yaml", "", "");
    assert_eq!(kubernetes_validate(&[intact]), Ok(3));
    for (path, says) in [
        (
            copy(
                "field.yaml",
                "process.yaml",
                "readinessProbe:",
                "readinesProbe:",
            ),
            "'readinesProbe' was unexpected",
        ),
        (
            copy("type.yaml", "sink.yaml", "replicas: 3", "replicas: three"),
            "'three' is not of type 'integer'",
        ),
        (
            copy(
                "required.yaml",
                "sink.yaml",
                "serviceName: hubsync-sink",
                "service: hubsync-sink",
            ),
            "'serviceName' is a required property",
        ),
        (
            copy(
                "kind.yaml",
                "serviceaccount.yaml",
                "kind: ServiceAccount",
                "kind: ServiceAcount",
            ),
            "Couldn't find schema for kind ServiceAcount",
        ),
    ] {
        match kubernetes_validate(std::slice::from_ref(&path)) {
            Ok(_) => panic!("kubernetes-validate takes {}", path.display()),
            Err(why) => assert!(
                why.contains(says),
                "{} refused, but not for {says:?}:\n{why}",
                path.display()
            ),
        }
    }
}

#[test]
fn the_kustomization_applies_every_manifest_but_the_secret_template_and_names_no_namespace() {
    let kustomization = yaml_documents(&deploy("kubernetes/kustomization.yaml"));
    let [kustomization] = kustomization.as_slice() else {
        panic!("one kustomization: {kustomization:?}")
    };
    assert_eq!(kustomization["kind"], "Kustomization");
    assert!(
        kustomization.get("namespace").is_none(),
        "the manifests are namespace-agnostic: {kustomization}"
    );
    let mut listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file"))
        .collect();
    listed.sort_unstable();
    let files: Vec<String> = manifest_files()
        .iter()
        .map(|f| {
            f.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "secret.example.yaml")
        .collect();
    assert_eq!(
        listed, files,
        "kustomization.yaml's resources against the manifests"
    );
    for document in manifests() {
        assert!(
            document["metadata"].get("namespace").is_none(),
            "{} {} names a namespace",
            document["kind"],
            document["metadata"]["name"]
        );
    }
}

#[test]
fn the_configmaps_hold_a_service_file_and_team_files_that_config_check_accepts() {
    let documents = manifests();
    let service = kubernetes_service_file(&documents);
    // The pods' file system, as their mounts lay it out, in a temporary directory.
    let root = tempfile::tempdir().expect("tempdir");
    let mut config_files = Vec::new();
    for (stage, workload) in workloads(&documents) {
        let container = container(workload);
        let config = flag(&args(container), "--config").expect("run --config FILE");
        let config = Path::new(config);
        let config_dir = config
            .parent()
            .expect("a directory")
            .to_str()
            .expect("utf-8");
        let volume = volume_at(container, config_dir)
            .unwrap_or_else(|| panic!("{stage}: nothing mounted at {config_dir}"));
        assert_eq!(
            pod_volume(workload, volume).expect("the volume")["configMap"]["name"],
            "hubsync-config",
            "{stage}: {config_dir} is the hubsync-config ConfigMap"
        );
        assert_eq!(
            config.file_name().expect("a file name"),
            "hubsync.toml",
            "{stage}: --config names the ConfigMap's key"
        );
        // [teams] dir, relative to the service file, is where the teams ConfigMap is mounted.
        let teams_dir = lexical(
            &Path::new(config_dir).join(service["teams"]["dir"].as_str().expect("teams.dir")),
        );
        let teams_mount = mount_path(container, "teams").expect("the teams volume mounted");
        assert_eq!(
            teams_dir,
            Path::new(teams_mount),
            "{stage}: teams.dir against the teams mount"
        );
        assert_eq!(
            pod_volume(workload, "teams").expect("the teams volume")["configMap"]["name"],
            "hubsync-teams"
        );
        config_files.push((config.to_path_buf(), teams_dir));
    }
    assert!(
        config_files.iter().all(|files| *files == config_files[0]),
        "every stage reads one service file: {config_files:?}"
    );
    let (config, teams_dir) = &config_files[0];
    let inside = |path: &Path| root.path().join(path.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(inside(config.parent().expect("a directory"))).expect("config dir");
    std::fs::write(
        inside(config),
        configmap_file(&documents, "hubsync-config", "hubsync.toml"),
    )
    .expect("service file written");
    std::fs::create_dir_all(inside(teams_dir)).expect("teams dir");
    let teams = resource(&documents, "ConfigMap", "hubsync-teams")["data"]
        .as_object()
        .expect("team files")
        .clone();
    for (name, text) in &teams {
        assert!(
            name.ends_with(".toml"),
            "{name}: only *.toml files are team files"
        );
        std::fs::write(inside(teams_dir).join(name), text.as_str().expect("text"))
            .expect("team file written");
    }
    let report = config_check_service(&inside(config), &["acme-sales"]);
    let summary = &report["teams"][0]["summary"];
    assert_eq!(
        summary["kafka_brokers"],
        service["kafka"]["brokers"].as_str().expect("brokers")
    );
    assert!(
        !summary["kafka_brokers"]
            .as_str()
            .expect("brokers")
            .contains("localhost"),
        "Kafka is reached by its Service name: {summary}"
    );
    assert_eq!(
        summary["consumer_groups"],
        serde_json::json!([
            "hubsync.process",
            "hubsync.process-replay",
            "hubsync.sink",
            "hubsync.sink-replay",
            "hubsync.inbound",
            "hubsync.inbound-identity"
        ])
    );
}

#[test]
fn the_probes_ask_healthz_on_the_admin_port_the_service_file_listens_on() {
    let documents = manifests();
    let service = kubernetes_service_file(&documents);
    let listen: std::net::SocketAddr = service["admin"]["listen"]
        .as_str()
        .expect("admin.listen")
        .parse()
        .expect("admin.listen is an address");
    assert!(
        listen.ip().is_unspecified(),
        "the kubelet and Prometheus reach the pod's address, not its loopback: {listen}"
    );
    let port = u64::from(listen.port());
    for (stage, workload) in workloads(&documents) {
        let container = container(workload);
        assert_eq!(
            flag(&args(container), "--stage"),
            Some(stage),
            "{stage}: run --stage"
        );
        let admin = named_port(container, "admin")
            .unwrap_or_else(|| panic!("{stage}: no port named admin"));
        assert_eq!(
            admin["containerPort"], port,
            "{stage}: the admin port is admin.listen's"
        );
        let window = |probe: &Value| {
            probe["periodSeconds"].as_u64().unwrap_or(10)
                * probe["failureThreshold"].as_u64().unwrap_or(3)
        };
        for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let probe = &container[kind];
            assert_eq!(
                probe["httpGet"]["path"], "/healthz",
                "{stage}: {kind}: {probe}"
            );
            assert!(
                probe["httpGet"]["port"] == "admin" || probe["httpGet"]["port"] == port,
                "{stage}: {kind} asks another port than admin.listen's: {probe}"
            );
        }
        let (startup, ready, live) = (
            window(&container["startupProbe"]),
            window(&container["readinessProbe"]),
            window(&container["livenessProbe"]),
        );
        assert!(
            startup >= 600,
            "{stage}: a start of every team's checks gets {startup} s"
        );
        assert!(
            live >= 120 && live > ready,
            "{stage}: liveness gives up after {live} s (readiness {ready} s): a stage's 503 that \
             clears by itself must not restart the pod"
        );
        let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string(),
            "{stage}"
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{stage}");
        // A Service of the admin port selects the stage's pods; not-ready ones included, unless
        // it also carries HubSpot's webhooks, which go to a ready receiver only.
        let name = workload["metadata"]["name"].as_str().expect("a name");
        let svc = resource(&documents, "Service", name);
        assert!(
            selects(&svc["spec"]["selector"], workload),
            "{stage}: {svc}"
        );
        assert!(
            service_port_to(svc, "admin", port).is_some(),
            "{stage}: the Service does not target the admin port: {svc}"
        );
        let webhooks = named_port(container, "webhooks")
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|number| service_port_to(svc, "webhooks", number));
        if webhooks.is_some() {
            assert_ne!(
                svc["spec"]["publishNotReadyAddresses"], true,
                "{stage}: HubSpot's requests would reach a receiver that is not ready"
            );
        } else {
            assert_eq!(svc["spec"]["publishNotReadyAddresses"], true, "{stage}");
        }
    }
}

#[test]
fn the_webhooks_port_is_the_one_webhook_listen_names_and_the_inbound_service_targets_it() {
    let documents = manifests();
    let service = kubernetes_service_file(&documents);
    let listen: std::net::SocketAddr = service["stages"]["inbound"]["webhook_listen"]
        .as_str()
        .expect("stages.inbound.webhook_listen: the inbound workload runs the receiver")
        .parse()
        .expect("webhook_listen is an address");
    assert!(
        listen.ip().is_unspecified(),
        "the Service reaches the pod's address, not its loopback: {listen}"
    );
    let port = u64::from(listen.port());
    let admin: std::net::SocketAddr = service["admin"]["listen"]
        .as_str()
        .expect("admin.listen")
        .parse()
        .expect("admin.listen is an address");
    assert_ne!(
        port,
        u64::from(admin.port()),
        "the receiver has a listener of its own"
    );

    // Only the inbound stage listens for webhooks, on the port webhook_listen names.
    for (stage, workload) in workloads(&documents) {
        let webhooks = named_port(container(workload), "webhooks");
        if stage != "inbound" {
            assert!(webhooks.is_none(), "{stage} runs no receiver: {webhooks:?}");
            continue;
        }
        let webhooks = webhooks.expect("the inbound container's port named webhooks");
        assert_eq!(
            webhooks["containerPort"], port,
            "the webhooks port is webhook_listen's"
        );
        assert_eq!(webhooks["protocol"], "TCP");

        // The Service HubSpot is reached through (from an Ingress) targets that port, has an
        // address of its own and sends requests only to ready pods.
        let svc = resource(&documents, "Service", "hubsync-inbound");
        assert!(selects(&svc["spec"]["selector"], workload), "{svc}");
        let exposed = service_port_to(svc, "webhooks", port)
            .unwrap_or_else(|| panic!("the Service does not target the webhooks port: {svc}"));
        assert_eq!(exposed["name"], "webhooks", "{exposed}");
        assert!(exposed["port"].as_u64().is_some_and(|p| p > 0), "{exposed}");
        assert_ne!(
            svc["spec"]["clusterIP"], "None",
            "an Ingress backend needs a Service with an address of its own: {svc}"
        );
        assert_ne!(svc["spec"]["publishNotReadyAddresses"], true, "{svc}");
    }
}

#[test]
fn the_stateful_stages_keep_their_state_on_a_claim_and_every_pod_is_bounded_and_locked_down() {
    let documents = manifests();
    let service = kubernetes_service_file(&documents);
    let state_dir = service["state"]["dir"].as_str().expect("state.dir");
    let [(_, process), (_, sink), (_, inbound)] = workloads(&documents);

    // The sink's and the inbound stage's sled state, on a claim of each instance that outlives
    // its pod: the consumer groups' offsets survive in Kafka, so the state must too.
    let stateful: Vec<&str> = workloads(&documents)
        .iter()
        .filter(|(_, workload)| workload["kind"] == "StatefulSet")
        .map(|(stage, _)| *stage)
        .collect();
    assert_eq!(stateful, ["sink", "inbound"], "the stages that keep state");
    for (stage, workload) in [("sink", sink), ("inbound", inbound)] {
        let claims = workload["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap_or_else(|| panic!("{stage}: no volumeClaimTemplates"));
        let claim = volume_at(container(workload), state_dir)
            .unwrap_or_else(|| panic!("{stage} mounts nothing at state.dir {state_dir}"));
        let template = claims
            .iter()
            .find(|c| c["metadata"]["name"] == claim)
            .unwrap_or_else(|| {
                panic!("{stage}: the state.dir mount {claim} is not one of its claims: {claims:?}")
            });
        assert!(
            pod_volume(workload, claim).is_none(),
            "{stage}: {claim} is a pod volume, so the claim template is not used"
        );
        assert_eq!(
            template["spec"]["accessModes"],
            serde_json::json!(["ReadWriteOnce"]),
            "{stage}"
        );
        assert!(
            template["spec"]["resources"]["requests"]["storage"].is_string(),
            "{stage}: the claim asks for no size: {template}"
        );
        let retention = &workload["spec"]["persistentVolumeClaimRetentionPolicy"];
        for when in ["whenDeleted", "whenScaled"] {
            assert_eq!(
                retention[when], "Retain",
                "{stage}: the state's claim is deleted {when}: {retention}"
            );
        }
        let governing = workload["spec"]["serviceName"]
            .as_str()
            .unwrap_or_else(|| panic!("{stage}: no serviceName"));
        assert!(
            selects(
                &resource(&documents, "Service", governing)["spec"]["selector"],
                workload
            ),
            "{stage}: the governing Service {governing} selects other pods"
        );
    }
    // Several sinks, each in the group under its pod's name (static membership).
    assert!(
        sink["spec"]["replicas"].as_u64().is_some_and(|n| n > 1),
        "{sink}"
    );
    let instance = container(sink)["env"]
        .as_array()
        .expect("the sink's environment")
        .iter()
        .find(|e| e["name"] == "HUBSYNC_INSTANCE_ID")
        .unwrap_or_else(|| panic!("the sink sets no HUBSYNC_INSTANCE_ID"));
    assert_eq!(
        instance["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "each sink pod joins its group under its own name"
    );
    let governing = sink["spec"]["serviceName"].as_str().expect("serviceName");
    assert_eq!(
        resource(&documents, "Service", governing)["spec"]["clusterIP"],
        "None"
    );
    // The inbound stage's state does not follow its partitions (nor its two groups each
    // other's): one instance until the scale-out work lands.
    assert_eq!(
        inbound["spec"]["replicas"], 1,
        "the inbound stage's state is local to one instance"
    );
    let process_state = volume_at(container(process), state_dir)
        .and_then(|name| pod_volume(process, name))
        .unwrap_or_else(|| panic!("the process stage mounts nothing at {state_dir}"));
    assert!(
        process_state.get("emptyDir").is_some(),
        "the process stage keeps no state: {process_state}"
    );
    assert!(
        sink["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 120),
        "the sink gets the systemd unit's 120 s to finish its batches"
    );

    for (stage, workload) in workloads(&documents) {
        let name = workload["metadata"]["name"].as_str().expect("a name");
        let budget = resource(&documents, "PodDisruptionBudget", name);
        assert!(
            selects(&budget["spec"]["selector"]["matchLabels"], workload),
            "{stage}: the disruption budget selects other pods: {budget}"
        );
        let container = container(workload);
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][bound][resource].is_string(),
                    "{stage}: no {bound}.{resource}"
                );
            }
        }
        let pod = &pod_spec(workload)["securityContext"];
        assert_eq!(pod["runAsNonRoot"], true, "{stage}: {pod}");
        assert!(
            pod["runAsUser"].as_u64().is_some_and(|u| u > 0),
            "{stage}: {pod}"
        );
        let own = &container["securityContext"];
        assert_eq!(own["readOnlyRootFilesystem"], true, "{stage}: {own}");
        assert_eq!(own["allowPrivilegeEscalation"], false, "{stage}: {own}");
        assert_eq!(
            own["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{stage}"
        );
        assert_eq!(
            pod_spec(workload)["automountServiceAccountToken"],
            false,
            "{stage}"
        );
    }
}

#[test]
fn every_secret_the_files_name_is_a_key_of_a_secret_mounted_where_they_read_it() {
    let documents = manifests();
    let mut files = Vec::new();
    let mut envs = Vec::new();
    let service = toml::Value::Table(kubernetes_service_file(&documents));
    secret_references(&service, &mut files, &mut envs);
    for text in resource(&documents, "ConfigMap", "hubsync-teams")["data"]
        .as_object()
        .expect("team files")
        .values()
    {
        let team: toml::Table = text.as_str().expect("text").parse().expect("TOML");
        let team = toml::Value::Table(team);
        secret_references(&team, &mut files, &mut envs);
    }
    assert!(files.len() >= 2, "secrets named: {files:?}");
    assert!(
        envs.is_empty(),
        "the pods set no secret environment variable: use {{ file = .. }} ({envs:?})"
    );
    for file in &files {
        let path = Path::new(file);
        let dir = path.parent().expect("a directory").to_str().expect("utf-8");
        let key = path.file_name().expect("a key").to_str().expect("utf-8");
        for (stage, workload) in workloads(&documents) {
            let volume = volume_at(container(workload), dir)
                .and_then(|name| pod_volume(workload, name))
                .unwrap_or_else(|| {
                    panic!("{stage}: nothing mounted at {dir}, where {file} is read")
                });
            let secret = volume["secret"]["secretName"]
                .as_str()
                .unwrap_or_else(|| panic!("{stage}: {dir} is not a Secret: {volume}"));
            let example = resource(&documents, "Secret", secret);
            assert!(
                example["stringData"].get(key).is_some(),
                "{file}: secret.example.yaml's {secret} has no key {key}"
            );
        }
    }
    // The receiver cannot start without the app's client secret: its Secret is not optional to
    // the inbound pods (they wait for it instead of restarting in a loop).
    let client_secret = service
        .get("hubspot")
        .and_then(|hubspot| hubspot.get("client_secret"))
        .and_then(|secret| secret.get("file"))
        .and_then(toml::Value::as_str)
        .expect("hubspot.client_secret is a { file = .. }, which the receiver needs");
    let [_, _, (_, inbound)] = workloads(&documents);
    let dir = Path::new(client_secret).parent().expect("a directory");
    let volume = volume_at(container(inbound), dir.to_str().expect("utf-8"))
        .and_then(|name| pod_volume(inbound, name))
        .expect("the client secret's directory mounted");
    assert_ne!(
        volume["secret"]["optional"], true,
        "the inbound stage needs {client_secret}: {volume}"
    );

    // The template holds placeholders, never a value.
    for secret in documents.iter().filter(|d| d["kind"] == "Secret") {
        assert!(secret.get("data").is_none(), "{secret}");
        for (key, value) in secret["stringData"].as_object().expect("stringData") {
            let value = value.as_str().expect("text");
            assert!(
                value.starts_with('<') && value.ends_with('>'),
                "{key} of {} is not a <placeholder>",
                secret["metadata"]["name"]
            );
        }
    }
}

/// The compose validators on a compose file: Debian's `docker-compose config -q` (service
/// references, volumes, build context, types; no Docker daemon needed) and check-jsonschema's
/// bundled compose-spec schema. Each with whether it took the file and what it said.
fn compose_validate(file: &Path) -> [(&'static str, bool, String); 2] {
    let dir = file.parent().expect("a directory");
    let name = file.to_str().expect("utf-8 path");
    let (compose_ok, compose_out) = tool("docker-compose", &["-f", name, "config", "-q"], dir);
    let (schema_ok, schema_out) = tool(
        &venv_tool("check-jsonschema"),
        &["--builtin-schema", "vendor.compose-spec", name],
        dir,
    );
    [
        ("docker-compose config", compose_ok, compose_out),
        ("check-jsonschema compose-spec", schema_ok, schema_out),
    ]
}

#[test]
fn the_compose_file_passes_docker_compose_and_the_compose_spec() {
    for (validator, ok, out) in compose_validate(&deploy("compose/compose.yaml")) {
        assert!(ok, "{validator}:\n{out}");
    }
}

#[test]
fn the_compose_validators_refuse_a_broken_copy() {
    let text = std::fs::read_to_string(deploy("compose/compose.yaml")).expect("compose.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |name: &str, from: &str, to: &str| {
        assert!(text.contains(from), "compose.yaml has no {from:?} to break");
        let path = dir.path().join(name);
        std::fs::write(&path, text.replacen(from, to, 1)).expect("the copy");
        path
    };
    // The copy passes as it is, so a refusal below is the break's doing.
    for (validator, ok, out) in compose_validate(&copy("compose.yaml", "", "")) {
        assert!(ok, "{validator} refuses the intact copy:\n{out}");
    }
    let misspelt = copy("misspelt.yaml", "    healthcheck:", "    healthchek:");
    for (validator, ok, out) in compose_validate(&misspelt) {
        assert!(!ok, "{validator} takes a misspelt key:\n{out}");
        assert!(
            out.contains("healthchek"),
            "{validator} does not name it:\n{out}"
        );
    }
    let condition = copy(
        "condition.yaml",
        "condition: service_completed_successfully",
        "condition: service_finished",
    );
    for (validator, ok, out) in compose_validate(&condition) {
        assert!(
            !ok,
            "{validator} takes an unknown depends_on condition:\n{out}"
        );
    }
    let [(validator, ok, out), _] = compose_validate(&copy(
        "undefined.yaml",
        "      kafka-init:",
        "      kafka-inti:",
    ));
    assert!(
        !ok && out.contains("kafka-inti"),
        "{validator} takes a dependency on no service:\n{out}"
    );
}

#[test]
fn the_compose_services_start_in_order_and_hubsync_reads_what_they_serve() {
    let documents = yaml_documents(&deploy("compose/compose.yaml"));
    let services = &documents[0]["services"];
    let image = |service: &str| {
        services[service]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let pinned = |image: &str, repository: &str| {
        image
            .strip_prefix(repository)
            .and_then(|tag| tag.strip_prefix(':'))
            .is_some_and(|tag| tag.chars().next().is_some_and(|c| c.is_ascii_digit()))
    };
    assert!(
        pinned(&image("kafka"), "apache/kafka"),
        "{}",
        image("kafka")
    );
    assert!(
        pinned(&image("schema-registry"), "confluentinc/cp-schema-registry"),
        "{}",
        image("schema-registry")
    );
    let env = |service: &str, key: &str| {
        services[service]["environment"][key]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                services[service]["environment"][key]
                    .as_u64()
                    .map(|n| n.to_string())
            })
            .unwrap_or_else(|| panic!("{service} sets no {key}"))
    };
    assert_eq!(
        env("kafka", "KAFKA_PROCESS_ROLES"),
        "broker,controller",
        "one KRaft node"
    );
    let condition =
        |service: &str, on: &str| services[service]["depends_on"][on]["condition"].clone();
    assert_eq!(condition("kafka-init", "kafka"), "service_healthy");
    assert_eq!(condition("schema-registry", "kafka"), "service_healthy");
    assert_eq!(
        condition("hubsync", "kafka-init"),
        "service_completed_successfully"
    );
    assert_eq!(condition("hubsync", "schema-registry"), "service_healthy");
    for service in ["kafka", "schema-registry", "hubsync"] {
        assert!(
            services[service]["healthcheck"]["test"].is_array(),
            "{service}: no healthcheck"
        );
    }

    // The image is built by a Dockerfile that is there.
    let build = &services["hubsync"]["build"];
    let context = deploy("compose").join(build["context"].as_str().expect("build.context"));
    let dockerfile = context.join(build["dockerfile"].as_str().expect("build.dockerfile"));
    assert!(dockerfile.is_file(), "{} is missing", dockerfile.display());
    assert!(
        context.join("Cargo.lock").is_file(),
        "the build context is the workspace"
    );

    // The service file hubsync gets, checked, and what it names served by the other services.
    let mounts: Vec<(String, String)> = services["hubsync"]["volumes"]
        .as_array()
        .expect("hubsync's volumes")
        .iter()
        .map(|v| {
            let mut parts = v.as_str().expect("short syntax").split(':');
            (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let command: Vec<&str> = services["hubsync"]["command"]
        .as_array()
        .expect("hubsync's command")
        .iter()
        .map(|a| a.as_str().expect("text"))
        .collect();
    let config = flag(&command, "--config").expect("run --config FILE");
    let (source, _) = mounts
        .iter()
        .find(|(_, target)| target == config)
        .unwrap_or_else(|| panic!("{config} is not mounted: {mounts:?}"));
    let service_file = deploy("compose").join(source);
    let report = config_check_service(&service_file, &["example"]);
    let summary = &report["teams"][0]["summary"];
    let text = std::fs::read_to_string(&service_file).expect("the service file");
    let settings: toml::Table = text.parse().expect("TOML");
    assert!(
        mounts.iter().any(|(_, target)| Path::new(target)
            == Path::new(config)
                .parent()
                .expect("a directory")
                .join(settings["teams"]["dir"].as_str().expect("teams.dir"))),
        "teams.dir is not mounted: {mounts:?}"
    );
    let brokers = summary["kafka_brokers"].as_str().expect("brokers");
    assert!(
        env("kafka", "KAFKA_ADVERTISED_LISTENERS").contains(&format!("//{brokers}")),
        "the broker does not advertise {brokers}"
    );
    let registry = summary["registry_url"].as_str().expect("registry url");
    assert_eq!(registry, "http://schema-registry:8081");
    assert!(env("schema-registry", "SCHEMA_REGISTRY_LISTENERS").ends_with(":8081"));
    let state_dir = settings["state"]["dir"].as_str().expect("state.dir");
    assert!(
        mounts
            .iter()
            .any(|(source, target)| target == state_dir && !source.starts_with('.')),
        "state.dir {state_dir} is not on a volume: {mounts:?}"
    );
    let listen = settings["admin"]["listen"].as_str().expect("admin.listen");
    let port = listen.rsplit(':').next().expect("a port");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "{listen}: the healthcheck and the host reach it"
    );
    let healthcheck = services["hubsync"]["healthcheck"]["test"].to_string();
    assert!(
        healthcheck.contains(&format!(":{port}/healthz")),
        "the healthcheck asks another port than {listen}: {healthcheck}"
    );
    // Every topic the pipeline reads or writes is made by kafka-init.
    let init = services["kafka-init"]["command"].to_string();
    let topics = summary["topics"].as_object().expect("topics");
    assert!(topics.len() >= 9, "{topics:?}");
    for topic in topics.values() {
        let topic = topic.as_str().expect("a topic");
        assert!(init.contains(topic), "kafka-init does not create {topic}");
    }
}
