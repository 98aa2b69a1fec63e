//! Weights from real `torch.onnx.export` files (tests/reference/gen_onnx_fixtures.py): tiny
//! reference models of five families (CNNs with BatchNorm, plain and deep stem, a ViT, a Swin, a LeViT with its
//! BatchNorm linears, SR nets) exported with both exporters at opsets 17 and 18. The exporters
//! fold BatchNorms into convs, transpose and rename MatMul weights, gather relative-position
//! tables and move tensors to external data; the parameters recovered from the graph must give
//! the output the parity fixture holds (PyTorch's, in float64) within 1e-4. A Residual
//! Attention Network adds layers its forward never runs: in no export, found by a backward pass;
//! a NAT, relative-position tables moved by the exporter or folded with their lookup.

use burn::prelude::*;
use gaze::backbones::bsrn::BsrnConfig;
use gaze::backbones::levit::LevitConfig;
use gaze::backbones::nat::NatConfig;
use gaze::backbones::pan::PanConfig;
use gaze::backbones::residual_attention_net::{RanLayout, ResidualAttentionNetConfig};
use gaze::backbones::resnet::{BlockType, ResNetConfig, StemType};
use gaze::backbones::swin::SwinConfig;
use gaze::backbones::vit::VitConfig;
use gaze::backbones::Family;
use gaze::blocks::attention::AttentionKind;
use gaze::blocks::esa::BsrnLayout;
use gaze::weights::{
    apply_checkpoint, recover_onnx, recover_onnx_by_order, recover_onnx_with_hints, unused_layers,
    LoadError, OnnxHints,
};

use crate::common::{assert_close, deterministic_input, fixture, logits4, split_fixture};

const EXPORTS: [&str; 4] = [
    "torchscript_op17",
    "torchscript_op18",
    "dynamo_op17",
    "dynamo_op18",
];

/// Recovers `config`'s network from every export of `name` and compares its output at
/// `size` with the parity fixture's `key_<H>x<W>`.
fn check<C: Family>(
    name: &str,
    parity_fixture: &str,
    config: &C,
    size: [usize; 2],
    key: &str,
    forward: impl Fn(&C::Net, Tensor<4>) -> Tensor<4>,
) where
    C::Net: burn::module::ModuleDisplay,
{
    check_with(
        name,
        parity_fixture,
        config,
        size,
        key,
        &OnnxHints::default(),
        true,
        forward,
    )
}

/// [`check`] with what the network knows about itself (`hints`: layers its forward never
/// runs, size-dependent lookups); `by_order`: whether the network's parameter order is its
/// forward order, so that a file without names loads too.
#[allow(clippy::too_many_arguments)]
fn check_with<C: Family>(
    name: &str,
    parity_fixture: &str,
    config: &C,
    size: [usize; 2],
    key: &str,
    hints: &OnnxHints,
    by_order: bool,
    forward: impl Fn(&C::Net, Tensor<4>) -> Tensor<4>,
) where
    C::Net: burn::module::ModuleDisplay,
{
    let device = Device::flex();
    let (_, outputs) = split_fixture(&format!("{parity_fixture}.safetensors"));
    let tag = format!("{key}_{}x{}", size[0], size[1]);
    let expected = outputs
        .get(&tag)
        .unwrap_or_else(|| panic!("{parity_fixture} has no {tag}"))
        .clone();
    let x = deterministic_input([2, 3, size[0], size[1]], &device);
    let values = expected.try_into_vec::<f32>().unwrap();
    let n = values.len();
    let want = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
    let files: Vec<String> = EXPORTS
        .iter()
        .map(|e| format!("{name}__{e}"))
        .filter(|f| crate::common::exists(&fixture(&format!("onnx/{f}.onnx"))))
        .collect();
    assert!(files.len() >= 3, "{name}: exports missing ({files:?})");
    for file in &files {
        let path = fixture(&format!("onnx/{file}.onnx"));
        // With the names the exporter kept, and from forward order and shapes alone (a file
        // stripped of names): both must give the reference's output.
        for by_order in [false, true].into_iter().filter(|o| by_order || !o) {
            let net = config.init(&device);
            let keys = config.key_map();
            let recovered = if by_order {
                recover_onnx_by_order(&path, &net, &keys, name, hints)
            } else {
                recover_onnx_with_hints(&path, &net, &keys, name, hints)
            };
            let (checkpoint, summary) =
                recovered.unwrap_or_else(|e| panic!("{file} (by order: {by_order}): {e}"));
            eprintln!("{file} (by order: {by_order}): {summary:?}");
            let net = apply_checkpoint(net, checkpoint, &keys)
                .unwrap_or_else(|report| panic!("{file}: {report}"));
            let y = forward(&net, x.clone());
            let want = want.clone().reshape(y.dims());
            assert_close(&format!("{file} (by order: {by_order})"), y, want, 1e-4);
        }
    }
}

#[test]
fn resnet_with_batchnorm_folded_into_its_convs() {
    let config = ResNetConfig::new(BlockType::Bottleneck, vec![1, 2, 1, 1])
        .with_channels(vec![8, 8, 16, 16])
        .with_num_classes(10)
        .with_attn_layer(Some(AttentionKind::Se));
    check(
        "resnet_se",
        "resnet/bottleneck_plain_se",
        &config,
        [56, 56],
        "logits",
        |m, x| logits4(m.forward(x)),
    );
}

/// The tiny deep-stem ResNets of the parity fixtures `resnet/{bottleneck,basic}_d_*`.
fn deep_stem_resnet(block: BlockType, attn: AttentionKind) -> ResNetConfig {
    ResNetConfig::new(block, vec![1, 1, 1, 1])
        .with_channels(vec![8, 8, 16, 16])
        .with_num_classes(10)
        .with_attn_layer(Some(attn))
        .with_stem_type(StemType::Deep)
        .with_stem_width(8)
        .with_avg_down(true)
}

#[test]
fn deep_stem_resnet_with_a_norm_outside_the_stem_module() {
    // timm's deep stem `conv1` ends in a conv without bias whose norm is the top-level `bn1`:
    // the exporters fold that norm into `conv1.6` across the two modules.
    let config = deep_stem_resnet(BlockType::Bottleneck, AttentionKind::Eca);
    check(
        "resnet_deep_eca",
        "resnet/bottleneck_d_eca",
        &config,
        [29, 23],
        "logits",
        |m, x| logits4(m.forward(x)),
    );
}

#[test]
fn multi_axis_layer_norms_as_free_tensors() {
    // PSA's `conv_up` normalises over [c, 1, 1] (`nn.LayerNorm([c, 1, 1])`): an ONNX
    // LayerNormalization whose weight is no Burn LayerNorm's, matched as plain tensors.
    let config = deep_stem_resnet(BlockType::Basic, AttentionKind::PsaS);
    check_with(
        "resnet_psa",
        "resnet/basic_d_psa_s",
        &config,
        [29, 23],
        "logits",
        &OnnxHints::default(),
        // PSA declares `conv_q_right` before the `conv_v_right` its forward runs first: visit
        // order is not forward order, so only files with names load.
        false,
        |m, x| logits4(m.forward(x)),
    );
}

#[test]
fn vit_with_transposed_matmul_weights() {
    let config = VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10);
    check("vit", "vit/tiny", &config, [64, 64], "logits", |m, x| {
        logits4(m.forward(x))
    });
}

#[test]
fn swin_with_gathered_relative_position_tables() {
    let config = SwinConfig::new()
        .with_img_size([64, 64])
        .with_embed_dim(6)
        .with_depths(vec![2, 2, 2, 2])
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4)
        .with_num_classes(10);
    check("swin", "swin/tiny", &config, [64, 64], "logits", |m, x| {
        logits4(m.forward(x))
    });
}

#[test]
fn levit_with_batchnorm_linears_and_attention_biases() {
    let config = LevitConfig::new(vec![16, 24, 32], 8, vec![1, 1, 1], vec![2, 2, 2])
        .with_img_size([64, 64])
        .with_num_classes(10);
    check(
        "levit",
        "levit/tiny_distilled",
        &config,
        [64, 64],
        "logits",
        |m, x| logits4(m.forward(x)),
    );
}

#[test]
fn sr_nets_pan_and_bsrn_s() {
    let pan = PanConfig::new(2).with_nf(8).with_unf(6).with_num_blocks(2);
    check("pan_x2", "pan/pan_x2", &pan, [12, 12], "output", |m, x| {
        m.forward(x)
    });
    let bsrn = BsrnConfig::new(2)
        .with_num_feat(8)
        .with_num_block(5)
        .with_layout(BsrnLayout::BsrnS);
    check(
        "bsrn_s",
        "bsrn/bsrn_s_x2",
        &bsrn,
        [15, 23],
        "output",
        |m, x| m.forward(x),
    );
}

#[test]
fn ran_with_layers_its_forward_never_runs() {
    // The pre-activation units build their shortcut projection `conv4` even where the shortcut
    // is the identity; those layers run in no forward, so no export holds them.
    let config = ResidualAttentionNetConfig::new(56)
        .with_layout(RanLayout::ImageNet)
        .with_stem_channels(8)
        .with_channels(vec![16, 16, 24, 32])
        .with_num_classes(10);
    let device = Device::flex();
    let autodiff = Device::flex().autodiff();
    let probe = config.init(&autodiff);
    let grads = probe
        .forward(deterministic_input([1, 3, 29, 23], &autodiff))
        .sum()
        .backward();
    let unused = unused_layers(&probe, &grads);
    eprintln!("never run: {unused:?}");
    assert!(
        !unused.is_empty() && unused.iter().all(|p| p.ends_with(".conv4.weight")),
        "{unused:?}"
    );
    // Without them the graph does not fit, and the error says which layer is missing.
    let err = recover_onnx(
        fixture("onnx/ran__torchscript_op18.onnx"),
        &config.init(&device),
        &config.key_map(),
        "ran",
    )
    .map(|_| ())
    .expect_err("conv4 is in no graph");
    assert!(
        matches!(err, LoadError::Graph { .. }) && err.to_string().contains("conv4"),
        "{err}"
    );
    // With them zero-filled, the exports give PyTorch's logits (conv4 layers that do run
    // carry calibrated, non-zero weights: zeroing one of them would change the output).
    check_with(
        "ran",
        "ran/attention56_imagenet",
        &config,
        [29, 23],
        "logits",
        &OnnxHints {
            never_run: unused,
            gathered: None,
        },
        // The attention modules interleave the layers of their lists (down path, skip
        // connections, up path) in the forward: visit order is not forward order, so only
        // files with names (both exporters' defaults) load.
        false,
        |m, x| logits4(m.forward(x)),
    );
}

#[test]
fn nat_with_moved_and_folded_relative_position_bias() {
    // TorchScript stores each `rpb` [heads, 5, 5] as the advanced index moved it ([5, 5,
    // heads]); dynamo folds the lookups of the small levels into constants [heads, H, W, 3, 3],
    // undone through the index the model computes for the export's input size.
    let config = NatConfig::new(4, 3.0, vec![1, 1, 2, 1], vec![1, 2, 2, 4])
        .with_kernel_size(3)
        .with_num_classes(10);
    let tables = |input: [usize; 2]| config.gathered_tables(input);
    let hints = OnnxHints {
        never_run: Vec::new(),
        gathered: Some(&tables),
    };
    // Without the index, the folded dynamo export does not load.
    let err = recover_onnx(
        fixture("onnx/nat__dynamo_op18.onnx"),
        &config.init(&Device::flex()),
        &config.key_map(),
        "nat",
    )
    .map(|_| ())
    .expect_err("a folded lookup needs the index");
    assert!(err.to_string().contains(".attn.rpb"), "{err}");
    check_with(
        "nat",
        "nat_biformer/nat_plain",
        &config,
        [112, 80],
        "logits",
        &hints,
        true,
        |m, x| logits4(m.forward(x)),
    );
}

#[test]
fn an_export_of_another_model_names_the_first_divergence() {
    // The ResNet's graph read as a ViT: no conv of the ViT's patch embedding shape.
    let device = Device::flex();
    let vit = VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10);
    for export in ["torchscript_op17", "dynamo_op18"] {
        let path = fixture(&format!("onnx/resnet_se__{export}.onnx"));
        let err = recover_onnx(&path, &vit.init(&device), &vit.key_map(), "vit_tiny")
            .map(|_| ())
            .expect_err("a ResNet export is no ViT");
        let text = err.to_string();
        eprintln!("{text}");
        assert!(
            text.contains("ONNX node 0 Conv")
                && text.contains("patch_embed.proj.weight [32, 3, 16, 16]"),
            "{text}"
        );
        assert!(matches!(err, LoadError::Graph { .. }));
    }
    // A Swin of other depths: the first block the file lacks.
    let deeper = SwinConfig::new()
        .with_img_size([64, 64])
        .with_embed_dim(6)
        .with_depths(vec![2, 2, 4, 2])
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4)
        .with_num_classes(10);
    let err = recover_onnx(
        fixture("onnx/swin__torchscript_op17.onnx"),
        &deeper.init(&device),
        &deeper.key_map(),
        "swin_deeper",
    )
    .map(|_| ())
    .expect_err("other depths");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("layers.2.blocks.2") || text.contains("layers.3"),
        "{text}"
    );
}

#[test]
fn external_data_that_is_missing_or_escapes_is_an_error() {
    let device = Device::flex();
    let dir = crate::common::tmp_dir("onnx-external");
    let src = fixture("onnx/vit__dynamo_op18.onnx");
    let copy = dir.join("vit.onnx");
    std::fs::copy(&src, &copy).unwrap();
    let config = VitConfig::new(32, 4, 2)
        .with_img_size(64)
        .with_num_classes(10);
    // The .data file is named after the original file: absent beside the copy.
    let err = recover_onnx(&copy, &config.init(&device), &config.key_map(), "vit")
        .map(|_| ())
        .expect_err("no external data");
    assert!(err.to_string().contains("external data"), "{err}");
    // Truncated external data.
    let data = std::fs::read(fixture("onnx/vit__dynamo_op18.onnx.data")).unwrap();
    std::fs::write(
        dir.join("vit__dynamo_op18.onnx.data"),
        &data[..data.len() / 2],
    )
    .unwrap();
    let copy2 = dir.join("vit__dynamo_op18.onnx");
    std::fs::copy(&src, &copy2).unwrap();
    let err = recover_onnx(&copy2, &config.init(&device), &config.key_map(), "vit")
        .map(|_| ())
        .expect_err("truncated external data");
    assert!(err.to_string().contains("beyond the end"), "{err}");
}

#[test]
fn a_registered_model_loads_its_default_export() {
    // The official BSRN-S x4 network exported by torch's default exporter (dynamo, external
    // data): `Model::load_weights` recovers it like any checkpoint.
    let device = Device::flex();
    let model = gaze::create_model("bsrn_s_x4", &device).unwrap();
    let (model, summary) = model
        .load_weights_with_summary(fixture("onnx/bsrn_s_x4.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{summary}");
    assert!(
        summary.onnx_graph.is_some(),
        "the names alone do not load it"
    );
    assert!(summary
        .to_string()
        .contains("recovered from the ONNX graph"));
    let (_, outputs) = split_fixture("onnx/bsrn_s_x4.safetensors");
    let want = outputs["output_15x15"].clone();
    let y = model
        .forward(deterministic_input([2, 3, 15, 15], &device))
        .unwrap()
        .into_image()
        .unwrap();
    assert_close("bsrn_s_x4.onnx", y, Tensor::from_data(want, &device), 1e-4);
    // And the same model's file does not load into another model.
    let err = gaze::create_model("bsrn_x4", &device)
        .unwrap()
        .load_weights(fixture("onnx/bsrn_s_x4.onnx"))
        .map(|_| ())
        .expect_err("BSRN-S is not BSRN");
    eprintln!("{err}");
    assert!(matches!(err, LoadError::Graph { .. }), "{err}");
}
