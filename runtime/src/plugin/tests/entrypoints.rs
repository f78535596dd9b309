//! The bundled `discovery-entrypoints` source through the host: a real wheel (written with
//! Python's `zipfile`, as build backends do) pip-installed into a venv made by the test, its
//! site-packages granted read-only, and the command the source answers run for real.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::{host, spec};
use crate::config::{PluginKind, Preopen};

/// Writes `mcp_demo-0.1.0-py3-none-any.whl` into `dir`: a package whose
/// `mcp_demo.server` module prints a marker when run, declared as entry point `demo` in
/// `mcp.providers` and `legacy_demo` in `mcp.mcp_servers`.
const BUILD_WHEEL: &str = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1] + "/mcp_demo-0.1.0-py3-none-any.whl"
files = {
    "mcp_demo/__init__.py": "",
    "mcp_demo/server.py": "def main():\n    print('mcp-demo-server-ran')\n\nif __name__ == '__main__':\n    main()\n",
    "mcp_demo-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: mcp-demo\nVersion: 0.1.0\n",
    "mcp_demo-0.1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hangar-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "mcp_demo-0.1.0.dist-info/entry_points.txt": "[console_scripts]\nmcp-demo = mcp_demo.server:main\n\n[mcp.providers]\ndemo = mcp_demo.server:main\n\n[mcp.mcp_servers]\nlegacy_demo = mcp_demo.server\n",
}
record = []
with zipfile.ZipFile(out, "w") as whl:
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
        whl.writestr(name, data)
    record.append("mcp_demo-0.1.0.dist-info/RECORD,,")
    whl.writestr("mcp_demo-0.1.0.dist-info/RECORD", "\n".join(record) + "\n")
print(out)
"#;

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A venv with the demo wheel installed: its python and its site-packages.
fn venv_with_wheel() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hangar-entrypoints-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let python3 = Path::new("python3");
    let venv = dir.join("venv");
    run(python3, &["-m", "venv", venv.to_str().expect("utf-8 path")]);
    let python = venv.join("bin/python");
    let wheel = run(
        python3,
        &["-c", BUILD_WHEEL, dir.to_str().expect("utf-8 path")],
    );
    run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            &wheel,
        ],
    );
    let site = run(
        &python,
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
    );
    (python, PathBuf::from(site))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pip_installed_entry_point_is_a_provider_run_by_the_venvs_python() {
    let (python, site) = venv_with_wheel();
    let site_str = site.to_str().expect("utf-8 path");
    let python_str = python.to_str().expect("utf-8 path");
    let mut spec = spec(
        "eps",
        PluginKind::Discovery,
        "discovery-entrypoints",
        json!({"site_packages": [site_str], "python": python_str}),
    );
    spec.preopens = vec![Preopen {
        host: site.clone(),
        guest: site_str.to_owned(),
    }];
    let plugin = host()
        .load(&spec)
        .await
        .expect("discovery-entrypoints loads");
    let found = plugin.discover().await.expect("discovers");
    // pip's own dist-info (and setuptools') declare no `mcp.*` entry points: only the demo's.
    let summary: Vec<(&str, &str, Vec<&str>)> = found
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.mode.as_str(),
                p.command.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "demo",
                "subprocess",
                vec![python_str, "-m", "mcp_demo.server"]
            ),
            (
                "legacy_demo",
                "subprocess",
                vec![python_str, "-m", "mcp_demo.server"]
            ),
        ]
    );
    assert!(
        found[0]
            .labels
            .contains(&("hangar.package".into(), "mcp_demo==0.1.0".into())),
        "{:?}",
        found[0].labels
    );
    // The answered command really runs the installed package.
    let argv = &found[0].command;
    let ran = run(Path::new(&argv[0]), &[argv[1].as_str(), argv[2].as_str()]);
    assert_eq!(ran, "mcp-demo-server-ran");

    // Without the preopen the plugin cannot see the directory, and says which one.
    spec.preopens.clear();
    let plugin = host().load(&spec).await.expect("loads");
    let err = plugin.discover().await.expect_err("not preopened");
    assert!(
        err.message.contains(&format!(
            "cannot read the site-packages directory {site_str}"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(
        site.ancestors()
            .nth(4)
            .expect("venv/lib/pythonX/site-packages"),
    );
}
