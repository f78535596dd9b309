//! Loading: wrong worlds and files are refused with a message that says what to do; the
//! sandbox grants nothing that was not asked for.

use std::time::Duration;

use super::{call, host, spec};
use crate::config::{PluginGrant, PluginKind, Preopen};
use crate::plugin::{HostOptions, PluginErrorKind, PluginHost, Verdict};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_another_world_is_refused_naming_plugin_path_and_world() {
    // An lb policy loaded as a validator: it does not export `validator`.
    let spec = spec("sticky", PluginKind::Validator, "sticky-session", json!({}));
    let err = host().load(&spec).await.expect_err("wrong world");
    assert_eq!(err.kind, PluginErrorKind::Load);
    assert_eq!(err.plugin, "sticky");
    let shown = err.to_string();
    for part in [
        "plugin `sticky`",
        &format!("`{}`", spec.path.display()),
        "is not a component of the `validator-plugin` world of hangar:plugin@0.2.0",
        "hangar:plugin/validator@0.2.0",
    ] {
        assert!(shown.contains(part), "`{part}` missing from: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_imports_docker_is_refused_at_load() {
    let spec = spec(
        "sneaky",
        PluginKind::Validator,
        "hostile-discovery",
        json!({}),
    );
    let err = host().load(&spec).await.expect_err("imports docker");
    assert_eq!(err.kind, PluginErrorKind::Load);
    assert!(
        err.message
            .contains("it may import only WASI, `host` and `calls`"),
        "{err}"
    );
    assert!(err.message.contains("hangar:plugin/docker"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_a_core_module_and_a_non_wasm_file_are_told_apart() {
    let dir = std::env::temp_dir().join(format!("hangar-plugin-loading-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let text = dir.join("text.wasm");
    std::fs::write(&text, b"hello").unwrap();
    let cases = [
        (dir.join("absent.wasm"), "cannot read"),
        (
            core,
            "is a core WebAssembly module, not a component: build it for `wasm32-wasip2`",
        ),
        (text, "is not a WebAssembly component"),
    ];
    for (path, expected) in cases {
        let mut spec = spec("v", PluginKind::Validator, "deny-patterns", json!({}));
        spec.path = path.clone();
        let err = host().load(&spec).await.expect_err("refused");
        assert_eq!(err.kind, PluginErrorKind::Load);
        assert!(err.message.contains(expected), "{}: {err}", path.display());
        assert!(err.message.contains(&path.display().to_string()), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_and_kubernetes_refuse_unless_granted() {
    let spec0 = spec(
        "finder",
        PluginKind::Discovery,
        "hostile-discovery",
        json!({}),
    );
    let plugin = host().load(&spec0).await.expect("loads");
    let err = plugin.discover().await.expect_err("not granted");
    assert_eq!(err.kind, PluginErrorKind::Reported);
    assert!(
        err.message.contains(
            "plugin `finder` was not granted `docker`; add `grants: [docker]` to its config"
        ),
        "{err}"
    );
    // Granted, the call reaches the engine: here a socket nobody serves, named in the error.
    let mut granted = spec0.clone();
    granted.grants = vec![PluginGrant::Docker];
    granted.grant_settings.docker.socket = Some("/nonexistent/hangar-test.sock".into());
    let plugin = host().load(&granted).await.expect("loads");
    let err = plugin.discover().await.expect_err("no engine there");
    assert!(
        err.message
            .contains("cannot reach the container engine at unix:///nonexistent/hangar-test.sock"),
        "{err}"
    );

    let mut kubernetes = spec0.clone();
    kubernetes.config = crate::config::PluginConfig::plain(json!({"first": "kubernetes"}));
    kubernetes.grants = vec![PluginGrant::Docker];
    let plugin = host().load(&kubernetes).await.expect("loads");
    let err = plugin.discover().await.expect_err("kubernetes not granted");
    assert!(
        err.message.contains(
            "plugin `finder` was not granted `kubernetes`; add `grants: [kubernetes]` to its \
             config"
        ),
        "{err}"
    );
    kubernetes.grants = vec![PluginGrant::Kubernetes];
    kubernetes.grant_settings.kubernetes.kubeconfig = Some("/nonexistent/kubeconfig".into());
    let plugin = host().load(&kubernetes).await.expect("loads");
    let err = plugin.discover().await.expect_err("no cluster configured");
    assert!(
        err.message.contains(
            "cannot read the kubeconfig /nonexistent/kubeconfig of plugin `finder`'s \
             `kubernetes` grant"
        ),
        "{err}"
    );
    assert_eq!(plugin.stats().failures_of(PluginErrorKind::Reported), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_is_metered_only_on_a_host_started_with_it() {
    let mut spec = spec(
        "loop",
        PluginKind::Validator,
        "hostile",
        json!({"mode": "loop"}),
    );
    spec.fuel = Some(1_000_000);
    spec.timeout = Duration::from_secs(5);
    let err = host()
        .load(&spec)
        .await
        .expect_err("no fuel on the shared host");
    assert_eq!(err.kind, PluginErrorKind::Load);
    assert!(err.message.contains("restart the hangar"), "{err}");

    let fueled = PluginHost::with_options(&HostOptions::for_plugins([&spec])).expect("host");
    assert!(fueled.meters_fuel());
    let plugin = fueled.load(&spec).await.expect("loads");
    let err = plugin
        .try_validate(&call("attack", json!({})))
        .await
        .expect_err("runs dry");
    assert_eq!(err.kind, PluginErrorKind::OutOfFuel, "{err}");
    assert_eq!(
        plugin.try_validate(&call("calm", json!({}))).await,
        Ok(Verdict::Allow)
    );
    // A plugin without `fuel:` on a metered host is not limited by it.
    let mut unlimited = super::spec("deny", PluginKind::Validator, "deny-patterns", json!({}));
    unlimited.fuel = None;
    let plugin = fueled.load(&unlimited).await.expect("loads");
    assert_eq!(
        plugin.try_validate(&call("t", json!({"a": "b"}))).await,
        Ok(Verdict::Allow)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_preopened_directory_is_a_load_error() {
    let mut spec = spec("v", PluginKind::Validator, "deny-patterns", json!({}));
    spec.preopens = vec![Preopen {
        host: "/nonexistent/rules".into(),
        guest: "/rules".into(),
    }];
    let err = host().load(&spec).await.expect_err("missing dir");
    assert_eq!(err.kind, PluginErrorKind::Load);
    assert!(
        err.message
            .contains("cannot open its preopened directory `/nonexistent/rules`"),
        "{err}"
    );
    spec.preopens[0].host = std::env::temp_dir();
    host()
        .load(&spec)
        .await
        .expect("an existing directory is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_instance_pool_fail_fast_as_busy() {
    let small = PluginHost::with_options(&HostOptions {
        fuel: false,
        max_live_instances: 2,
    })
    .expect("host");
    let mut looping = spec(
        "loop",
        PluginKind::Validator,
        "hostile",
        json!({"mode": "loop"}),
    );
    looping.timeout = Duration::from_millis(300);
    let plugin = std::sync::Arc::new(small.load(&looping).await.expect("loads"));
    let a = tokio::spawn({
        let p = plugin.clone();
        async move { p.try_validate(&call("attack", json!({}))).await }
    });
    let b = tokio::spawn({
        let p = plugin.clone();
        async move { p.try_validate(&call("attack", json!({}))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = plugin
        .try_validate(&call("calm", json!({})))
        .await
        .expect_err("pool is full");
    assert_eq!(err.kind, PluginErrorKind::Busy, "{err}");
    assert_eq!(a.await.unwrap().unwrap_err().kind, PluginErrorKind::Timeout);
    assert_eq!(b.await.unwrap().unwrap_err().kind, PluginErrorKind::Timeout);
    assert_eq!(
        plugin.try_validate(&call("calm", json!({}))).await,
        Ok(Verdict::Allow)
    );
}
