//! BSRN parity: the separable convolutions, ESA, CCA, the ESDB (and BSRN-S's block) and the
//! whole network (BSRN ×2/×3/×4, BSRN-S) against the OFFICIAL code (github.com/xiaom233/BSRN
//! @ 2d63d523; fixtures from tests/reference/gen_bsrn_fixtures.py), max abs diff ≤ 1e-4; the
//! full-size parameter counts are the official ones; inputs below 15×15 are refused.

use crate::common::{check_backbone, check_fixture, shared_dir, BackboneCheck};
use burn::module::Module;
use burn::prelude::*;
use gaze::backbones::bsrn::{key_map, Bsrn, BsrnConfig};
use gaze::backbones::InputSize;
use gaze::blocks::bsconv::{SeparableConvConfig, SeparableConvKind};
use gaze::blocks::cca::CcaLayerConfig;
use gaze::blocks::esa::{BsrnLayout, EsaConfig, ESA_MIN_INPUT};
use gaze::blocks::esdb::EsdbConfig;
use gaze::weights::KeyMap;

fn device() -> Device {
    Device::flex()
}

#[test]
fn separable_convs_match_official() {
    let identity = KeyMap::identity();
    let bsconvu = |cin, cout| SeparableConvConfig::new(cin, cout);
    for (file, config, params) in [
        // BSRN_arch BSConvU(8, 12): 8·12 + 12·9 + 12.
        ("bsrn/bsconvu.safetensors", bsconvu(8, 12), 216),
        // BSConvU(6, 6, 3, 2, 0): ESA's strided convolution.
        (
            "bsrn/bsconvu_s2.safetensors",
            bsconvu(6, 6).with_stride(2).with_padding(0),
            96,
        ),
        // BSConvS(16, 12): 16 → 4 → 12, depthwise.
        (
            "bsrn/bsconvs.safetensors",
            bsconvu(16, 12).with_kind(SeparableConvKind::BsConvS),
            232,
        ),
        // DepthWiseConv(8, 12): depthwise, then 8 → 12.
        (
            "bsrn/dwconv.safetensors",
            bsconvu(8, 12).with_kind(SeparableConvKind::DepthWiseConv),
            176,
        ),
        // Blocks.py BSConvU(8, 12) (BSRN-S): Linear 8 → 12 with bias, depthwise.
        (
            "bsrn/bsconvu_linear.safetensors",
            bsconvu(8, 12).with_linear_pointwise(true),
            228,
        ),
    ] {
        check_fixture(
            file,
            config.init(&device()),
            &identity,
            params,
            |m, x: Tensor<4>| m.forward(x),
        );
    }
}

#[test]
fn cca_matches_bsrn_official() {
    // BSRN_arch CCALayer(16) (the same layer as IMDN's): a 1-channel bottleneck.
    check_fixture(
        "bsrn/cca.safetensors",
        CcaLayerConfig::new(16).init(&device()),
        &gaze::blocks::cca::key_map(),
        49,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn esa_matches_official() {
    let identity = KeyMap::identity();
    // ESA(8, BSConvU), f = 2: at 21×24 (pooled 2×2) and at the minimum 15×15 (pooled 1×1).
    for file in ["bsrn/esa.safetensors", "bsrn/esa_min.safetensors"] {
        check_fixture(
            file,
            EsaConfig::new(8).init(&device()),
            &identity,
            144,
            |m, x: Tensor<4>| m.forward(x),
        );
    }
    // BSRN-S's ESA (rfdnfinalB5_arch.py): Linear 1×1s, plain strided 3×3.
    check_fixture(
        "bsrn/esa_s.safetensors",
        EsaConfig::new(8)
            .with_layout(BsrnLayout::BsrnS)
            .init(&device()),
        &identity,
        164,
        |m, x: Tensor<4>| m.forward(x),
    );
}

#[test]
fn esdb_matches_official() {
    let keys = gaze::blocks::esdb::key_map();
    // The official ESDB(16, 16, BSConvU), unchanged.
    check_fixture(
        "bsrn/esdb.safetensors",
        EsdbConfig::new(16).init(&device()),
        &keys,
        2833,
        |m, x: Tensor<4>| m.forward(x),
    );
    // ESDB(8, 8) with the other two convolution kinds (CCA reduction 4).
    for (file, kind, params) in [
        (
            "bsrn/esdb_bsconvs.safetensors",
            SeparableConvKind::BsConvS,
            966,
        ),
        (
            "bsrn/esdb_dwconv.safetensors",
            SeparableConvKind::DepthWiseConv,
            974,
        ),
    ] {
        check_fixture(
            file,
            EsdbConfig::new(8)
                .with_conv(kind)
                .with_cca_reduction(4)
                .init(&device()),
            &keys,
            params,
            |m, x: Tensor<4>| m.forward(x),
        );
    }
    // BSRN-S's block, the official RFDB(8, 8) of rfdnfinalB5_arch.py (`cw`, `conv_out`).
    check_fixture(
        "bsrn/rfdb.safetensors",
        EsdbConfig::new(8)
            .with_layout(BsrnLayout::BsrnS)
            .init(&device()),
        &keys,
        1020,
        |m, x: Tensor<4>| m.forward(x),
    );
}

fn check_whole(fixture: &str, config: BsrnConfig, sizes: &[[usize; 2]]) {
    check_backbone(
        BackboneCheck {
            fixture,
            sizes,
            in_chans: 3,
            forward: &|m: &Bsrn, x: Tensor<4>| m.forward(x),
            features: &|m: &Bsrn, x: Tensor<4>| vec![m.forward_features(x)],
        },
        || config.init(&device()),
        &key_map(config.num_block),
    );
}

#[test]
fn whole_bsrn_matches_official_x2_x3_x4() {
    // num_feat 8, the official eight blocks, CCA reduction 4. ×2 at 21×21 (ESA pools 2×2) and
    // 15×23 (1×2); ×3 at 15×23; ×4 at the minimum 15×15 (fixture size).
    for (scale, sizes) in [
        (2, &[[21, 21], [15, 23]][..]),
        (3, &[[15, 23]][..]),
        (4, &[[15, 15]][..]),
    ] {
        check_whole(
            &format!("bsrn/bsrn_x{scale}"),
            BsrnConfig::new(scale)
                .with_num_feat(8)
                .with_cca_reduction(4),
            sizes,
        );
    }
}

#[test]
fn whole_bsrn_s_matches_official() {
    // The official RFDNFINALB5(num_feat=8, num_block=5, upscale=2) (BSRN-S's network).
    check_whole(
        "bsrn/bsrn_s_x2",
        BsrnConfig::new(2)
            .with_num_feat(8)
            .with_num_block(5)
            .with_layout(BsrnLayout::BsrnS),
        &[[15, 23]],
    );
}

#[test]
fn every_gelu_of_the_reference_is_exact() {
    // burn's `gelu` is the erf form: the reference must use no tanh approximation.
    let constants = crate::common::constants("bsrn");
    for section in ["fixtures", "registered"] {
        for (name, c) in constants[section].as_object().unwrap() {
            let kinds: Vec<&str> = c["gelu_approximate"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(kinds, vec!["none"], "{section} {name}");
        }
    }
}

#[test]
fn full_size_param_counts_are_the_official_ones() {
    for (config, params) in [
        (BsrnConfig::new(2), 331_628),
        (BsrnConfig::new(3), 340_283),
        (BsrnConfig::new(4), 352_400),
        (
            BsrnConfig::new(4)
                .with_num_feat(48)
                .with_num_block(5)
                .with_layout(BsrnLayout::BsrnS),
            156_288,
        ),
    ] {
        assert_eq!(config.init(&device()).num_params(), params, "{config:?}");
    }
    crate::common::assert_registered_param_counts("bsrn/param_counts.json", &["bsrn"]);
}

#[test]
fn inputs_below_15_pixels_are_refused() {
    assert_eq!(ESA_MIN_INPUT, 15);
    let device = device();
    let model = gaze::create_model("bsrn_x2", &device).unwrap();
    assert_eq!(model.input_size(), InputSize::AtLeast([15, 15]));
    assert!(model
        .forward(Tensor::<4>::zeros([1, 3, 14, 40], &device))
        .is_err());
    assert!(model
        .forward(Tensor::<4>::zeros([1, 3, 40, 14], &device))
        .is_err());
    let y = model
        .forward(Tensor::<4>::zeros([1, 3, 15, 15], &device))
        .unwrap()
        .into_image()
        .unwrap();
    assert_eq!(y.dims(), [1, 3, 30, 30]);
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn official_checkpoints_load_strictly() {
    let Some(shared) = shared_dir() else { return };
    let device = device();
    for (name, file, params) in [
        ("bsrn_x2", "net_g_BSRN_x2.pth", 331_628),
        ("bsrn_x3", "net_g_BSRN_x3.pth", 340_283),
        ("bsrn_x4", "net_g_BSRN_x4.pth", 352_400),
        ("bsrn_s_x4", "net_g_BSRN-S.pth", 156_288),
    ] {
        let model = gaze::create_model(name, &device)
            .unwrap()
            .load_weights(shared.join("weights/sr/bsrn").join(file))
            .unwrap();
        assert_eq!(model.num_params(), params, "{name}");
    }
}
