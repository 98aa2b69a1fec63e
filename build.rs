//! Marks the tests that need `../shared` or a WGPU adapter as ignored (with the reason, so the
//! test summary counts them) on machines that lack them. In CI nothing is ignored: a missing
//! `../shared` or adapter makes those tests fail.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gaze_no_shared)");
    println!("cargo::rustc-check-cfg=cfg(gaze_no_wgpu)");
    for var in ["CI", "GAZE_SHARED", "GAZE_SKIP_WGPU"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci {
        return;
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shared = std::env::var_os("GAZE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let mut dir = root.clone();
            while !dir.join("tests/fixtures").is_dir() && dir.pop() {}
            dir.join("../shared")
        });
    if !shared.join("weights").is_dir() {
        println!("cargo::rustc-cfg=gaze_no_shared");
    }
    let icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
    let has_vulkan_driver = icd_dirs
        .iter()
        .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()));
    if std::env::var_os("GAZE_SKIP_WGPU").is_some() || !has_vulkan_driver {
        println!("cargo::rustc-cfg=gaze_no_wgpu");
    }
}
