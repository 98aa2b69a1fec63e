//! The integration suite: one test binary, so it links once. Every file of tests/suite/ is a
//! module here; `every_file_is_a_module` fails when one is not.

mod common;
mod degrade;
mod drive_trained;
mod loader;
mod model_api;
mod onnx;
mod pan_real_weights;
mod parity_a2n;
mod parity_attn_official;
mod parity_attn_sr;
mod parity_attn_timm;
mod parity_bsrn;
mod parity_encoder_unet;
mod parity_halonet;
mod parity_hat;
mod parity_imdn;
mod parity_levit;
mod parity_nat_biformer;
mod parity_pan;
mod parity_ran;
mod parity_rcan_han;
mod parity_resnet;
mod parity_swin;
mod parity_swin_unet;
mod parity_token_halo_levit;
mod parity_token_na_bra;
mod parity_token_vit_swin;
mod parity_unet;
mod parity_vapsr;
mod parity_vit;
mod preprocess;
mod registry;
mod segmentation;
mod sr_default;
mod sr_real_weights;
mod sr_tiling;
mod train;
mod wgpu;

#[test]
fn every_file_is_a_module() {
    let dir = common::workspace_root().join("tests/suite");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && stem != "main" {
            assert!(
                main.contains(&format!("mod {stem};")),
                "tests/suite/{stem}.rs is not a module of tests/suite/main.rs, so it never runs"
            );
        }
    }
}
