//! The CNI runtime against Debian's reference plugins (bridge + host-local, chained tuning)
//! and recording test plugins, inside a throw-away "node" namespace.

mod common;

use std::path::{Path, PathBuf};

use common::{NetnsGuard, TestResult, block_on_in, ip_n, ping_eventually, spy_calls, spy_plugin};
use rovn_kubelet::cni::{
    AttachmentTarget, CniError, CniRuntime, NetworkConfigList, kubernetes_args, result_ips,
};
use rovn_kubelet::sandbox;
use serde_json::{Value, json};

const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

fn target(id: &str, netns: &Path) -> AttachmentTarget {
    AttachmentTarget {
        container_id: id.into(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: kubernetes_args("default", &format!("pod-{id}"), id, &format!("uid-{id}")),
    }
}

fn list(value: Value) -> Result<NetworkConfigList, CniError> {
    NetworkConfigList::parse(value.to_string().as_bytes(), Path::new("test.conflist"))
}

struct Lab {
    guard: NetnsGuard,
    node: PathBuf,
    prefix: String,
    dir: tempfile::TempDir,
}

fn lab(tag: &str) -> Result<Lab, Box<dyn std::error::Error + Send + Sync>> {
    let prefix = common::unique_prefix(tag);
    let mut guard = NetnsGuard::new();
    let node = guard.create(&format!("{prefix}node"))?;
    Ok(Lab {
        guard,
        node,
        prefix,
        dir: tempfile::tempdir()?,
    })
}

#[test]
fn bridge_chain_add_ping_check_del() -> TestResult {
    let mut lab = lab("br")?;
    let spy_dir = lab.dir.path().join("spy");
    let extra_bin = lab.dir.path().join("bin");
    std::fs::create_dir_all(&extra_bin)?;
    spy_plugin(&extra_bin.join("spy"), &spy_dir, None)?;
    let data_dir = lab.dir.path().join("ipam");
    let net_name = format!("{}net", lab.prefix);
    let conf = list(json!({
        "cniVersion": "1.0.0",
        "name": net_name,
        "plugins": [
            {"type": "bridge", "bridge": "rkbr0", "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "dataDir": data_dir,
                      "ranges": [[{"subnet": "10.244.77.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "tuning", "mtu": 1400},
            {"type": "spy"}
        ]
    }))?;
    let a = lab.guard.create(&format!("{}a", lab.prefix))?;
    let b = lab.guard.create(&format!("{}b", lab.prefix))?;
    let runtime = CniRuntime::new(
        vec![PathBuf::from(REFERENCE_PLUGINS), extra_bin],
        lab.dir.path().join("cache"),
    );

    let (rt, cf, ta, tb) = (
        runtime.clone(),
        conf.clone(),
        target("aaaa", &a),
        target("bbbb", &b),
    );
    let (res_a, res_b) = block_on_in(&lab.node, move || async move {
        let ra = rt.add(&cf, &ta, &Default::default()).await;
        let rb = rt.add(&cf, &tb, &Default::default()).await;
        (ra, rb)
    })?;
    let (res_a, res_b) = (res_a?, res_b?);
    let ip_a = result_ips(&res_a).first().cloned().ok_or("no IP for a")?;
    let ip_b = result_ips(&res_b).first().cloned().ok_or("no IP for b")?;
    assert!(ip_a.starts_with("10.244.77."), "{ip_a}");
    assert_ne!(ip_a, ip_b);

    let a_name = format!("{}a", lab.prefix);
    let b_name = format!("{}b", lab.prefix);
    let eth0 = ip_n(&a_name, &["-o", "addr", "show", "dev", "eth0"])?;
    assert!(eth0.contains(&format!("{ip_a}/24")), "{eth0}");
    // tuning ran after bridge, on the interface bridge made (it needs prevResult to do so).
    assert!(ip_n(&a_name, &["link", "show", "eth0"])?.contains("mtu 1400"));
    assert!(ping_eventually(&a_name, &ip_b), "a cannot ping b ({ip_b})");
    assert!(ping_eventually(&b_name, &ip_a), "b cannot ping a ({ip_a})");

    // The spy, last in the chain, got tuning's result as prevResult and the full env.
    let calls = spy_calls(&spy_dir);
    let (verb, stdin, env) = calls.first().ok_or("spy not called")?;
    assert_eq!(verb, "ADD");
    assert_eq!(stdin["name"], net_name);
    assert_eq!(stdin["cniVersion"], "1.0.0");
    assert_eq!(result_ips(&stdin["prevResult"]), vec![ip_a.clone()]);
    assert!(stdin.get("runtimeConfig").is_none());
    assert!(env.contains("CNI_CONTAINERID=aaaa"), "{env}");
    assert!(env.contains(&format!("CNI_NETNS={}", a.display())), "{env}");
    assert!(env.contains("CNI_IFNAME=eth0"));
    assert!(env.contains(
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-aaaa;\
         K8S_POD_INFRA_CONTAINER_ID=aaaa;K8S_POD_UID=uid-aaaa"
    ));
    assert!(env.contains("CNI_PATH=/usr/lib/cni:"));

    // The cache holds the final result, in libcni's format.
    let cached = runtime
        .cache()
        .load(&net_name, "aaaa", "eth0")?
        .ok_or("no cache entry")?;
    assert_eq!(cached.kind, "cniCacheV1");
    assert_eq!(cached.result, res_a);

    let ipam_file = data_dir.join(&net_name).join(&ip_a);
    assert!(
        ipam_file.exists(),
        "host-local has no {}",
        ipam_file.display()
    );

    let (rt, cf, ta) = (runtime.clone(), conf.clone(), target("aaaa", &a));
    let (check, del1, del2, check_after) = block_on_in(&lab.node, move || async move {
        let check = rt.check(&cf, &ta).await;
        let del1 = rt.del(&cf, &ta).await;
        let del2 = rt.del(&cf, &ta).await;
        let check_after = rt.check(&cf, &ta).await;
        (check, del1, del2, check_after)
    })?;
    check?;
    del1?;
    del2?;
    assert!(matches!(check_after, Err(CniError::NoCachedResult { .. })));
    assert!(!ipam_file.exists(), "DEL left {}", ipam_file.display());
    assert!(runtime.cache().load(&net_name, "aaaa", "eth0")?.is_none());
    assert!(
        ip_n(&a_name, &["link", "show", "eth0"]).is_err(),
        "eth0 still in a"
    );

    // Spy saw: ADD a, ADD b, CHECK a (with the cached result), DEL a first of the chain
    // (reverse order) with prevResult, then the repeated DEL without one.
    let verbs: Vec<String> = spy_calls(&spy_dir).into_iter().map(|c| c.0).collect();
    assert_eq!(verbs, ["ADD", "ADD", "CHECK", "DEL", "DEL"]);
    let calls = spy_calls(&spy_dir);
    assert_eq!(calls[2].1["prevResult"], res_a);
    assert_eq!(calls[3].1["prevResult"], res_a);
    assert!(calls[4].1.get("prevResult").is_none());

    let (rt, cf, tb) = (runtime.clone(), conf.clone(), target("bbbb", &b));
    block_on_in(&lab.node, move || async move { rt.del(&cf, &tb).await })??;
    Ok(())
}

#[test]
fn unknown_plugin_type_is_not_found() -> TestResult {
    let lab = lab("nf")?;
    let sb = lab.dir.path().join("none");
    let conf = list(json!({"cniVersion":"1.0.0","name":"nf",
        "plugins":[{"type":"no-such-plugin-rovn"}]}))?;
    let runtime = CniRuntime::new(vec![PathBuf::from(REFERENCE_PLUGINS)], lab.dir.path());
    let t = target("cccc", &sb);
    let err = block_on_in(&lab.node, move || async move {
        runtime.add(&conf, &t, &Default::default()).await
    })?
    .err()
    .ok_or("ADD with a bogus plugin succeeded")?;
    assert!(matches!(err, CniError::PluginNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "failed to find plugin \"no-such-plugin-rovn\" in path [/usr/lib/cni]"
    );

    // DEL reports the missing plugin but still reaches the others (here the spy, before it in
    // the list, so after it in DEL order).
    let bin = lab.dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    let spy_dir = lab.dir.path().join("spy");
    spy_plugin(&bin.join("spy"), &spy_dir, None)?;
    let conf = list(json!({"cniVersion":"1.0.0","name":"nf2",
        "plugins":[{"type":"spy"},{"type":"no-such-plugin-rovn"}]}))?;
    let runtime = CniRuntime::new(vec![bin], lab.dir.path().join("cache"));
    let t = target("eeee", &sb);
    let del = block_on_in(
        &lab.node,
        move || async move { runtime.del(&conf, &t).await },
    )?;
    assert!(
        matches!(del, Err(CniError::PluginNotFound { .. })),
        "{del:?}"
    );
    let verbs: Vec<String> = spy_calls(&spy_dir).into_iter().map(|c| c.0).collect();
    assert_eq!(verbs, ["DEL"]);
    Ok(())
}

#[test]
fn plugin_error_object_surfaces() -> TestResult {
    let lab = lab("er")?;
    let bin = lab.dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    spy_plugin(&bin.join("spy"), &lab.dir.path().join("spy"), Some("ADD"))?;
    let conf = list(json!({"cniVersion":"1.0.0","name":"er","plugins":[{"type":"spy"}]}))?;
    let runtime = CniRuntime::new(vec![bin], lab.dir.path().join("cache"));
    let t = target("dddd", &lab.node);
    let err = block_on_in(&lab.node, move || async move {
        runtime.add(&conf, &t, &Default::default()).await
    })?
    .err()
    .ok_or("ADD succeeded despite the plugin's error")?;
    let obj = err.plugin_error().ok_or("no error object")?;
    assert_eq!(obj.code, 50);
    assert_eq!(obj.msg, "spy refuses ADD");
    assert_eq!(obj.details, "as asked");
    assert!(err.to_string().contains("spy refuses ADD"), "{err}");
    Ok(())
}

#[test]
fn status_before_add_and_gc_for_cni_1_1() -> TestResult {
    let lab = lab("gc")?;
    let bin = lab.dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    let spy_dir = lab.dir.path().join("spy");
    spy_plugin(&bin.join("spy"), &spy_dir, None)?;
    let conf = list(json!({"cniVersion":"1.1.0","name":"gcnet","plugins":[{"type":"spy"}]}))?;
    let runtime = CniRuntime::new(vec![bin.clone()], lab.dir.path().join("cache"));
    let (rt, cf) = (runtime.clone(), conf.clone());
    let (t1, t2) = (target("c1", &lab.node), target("c2", &lab.node));
    let report = block_on_in(&lab.node, move || async move {
        rt.add(&cf, &t1, &Default::default()).await?;
        rt.add(&cf, &t2, &Default::default()).await?;
        Ok::<_, CniError>(rt.gc(&cf, &[("c1".into(), "eth0".into())]).await)
    })??;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.deleted, vec![("c2".to_owned(), "eth0".to_owned())]);
    assert!(runtime.cache().load("gcnet", "c1", "eth0")?.is_some());
    assert!(runtime.cache().load("gcnet", "c2", "eth0")?.is_none());

    let calls = spy_calls(&spy_dir);
    let verbs: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(verbs, ["STATUS", "ADD", "STATUS", "ADD", "DEL", "GC"]);
    let status_env = &calls[0].2;
    assert!(!status_env.contains("CNI_CONTAINERID"), "{status_env}");
    let del_env = &calls[4].2;
    assert!(del_env.contains("CNI_CONTAINERID=c2"), "{del_env}");
    let (_, gc_in, gc_env) = &calls[5];
    assert_eq!(
        gc_in["cni.dev/valid-attachments"],
        json!([{"containerID":"c1","ifname":"eth0"}])
    );
    assert!(!gc_env.contains("CNI_NETNS"), "{gc_env}");

    // A plugin that is not ready fails the ADD before any ADD runs.
    let failing = lab.dir.path().join("spy2");
    let bin2 = lab.dir.path().join("bin2");
    std::fs::create_dir_all(&bin2)?;
    spy_plugin(&bin2.join("spy"), &failing, Some("STATUS"))?;
    let rt2 = CniRuntime::new(vec![bin2], lab.dir.path().join("cache2"));
    let t3 = target("c3", &lab.node);
    let err = block_on_in(&lab.node, move || async move {
        rt2.add(&conf, &t3, &Default::default()).await
    })?
    .err()
    .ok_or("ADD succeeded although STATUS failed")?;
    assert_eq!(err.plugin_error().map(|e| e.code), Some(50));
    let verbs: Vec<String> = spy_calls(&failing).into_iter().map(|c| c.0).collect();
    assert_eq!(verbs, ["STATUS"]);
    Ok(())
}

#[test]
fn sandbox_netns_lifecycle() -> TestResult {
    let prefix = common::unique_prefix("sb");
    let mut guard = NetnsGuard::new();
    let name = format!("{prefix}p0123456789ab");
    let path = guard.create(&name)?;
    assert!(sandbox::netns_exists(&name));
    assert!(matches!(
        sandbox::create_netns(&name),
        Err(sandbox::SandboxError::Exists(_))
    ));
    let lo = ip_n(&name, &["link", "show", "lo"])?;
    assert!(lo.contains("UP"), "{lo}");
    assert_eq!(sandbox::list_netns(&prefix)?, vec![name.clone()]);
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "sleep", "30"])
        .spawn()?;
    let mut seen = false;
    for _ in 0..50 {
        if sandbox::pids_in_netns(&path).contains(&(child.id() as i32)) {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    assert!(seen, "sleep not found in the sandbox");
    sandbox::delete_netns(&name)?;
    assert!(!sandbox::netns_exists(&name));
    assert!(!path.exists());
    sandbox::delete_netns(&name)?;
    Ok(())
}
