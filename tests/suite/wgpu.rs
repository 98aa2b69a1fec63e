//! The WGPU device (Mesa lavapipe in CI) computes what the CPU computes. Outside CI these
//! tests are ignored where no Vulkan driver is installed or GAZE_SKIP_WGPU is set.

use crate::common::{assert_close, shared_dir};

/// WGPU against the CPU: another backend sums in another order, so its rounding differs a
/// little more than the CPU's from PyTorch's (the parity with the references is the CPU
/// suite's 1e-4).
const WGPU_TOL: f32 = 2e-4;
use burn::prelude::*;
use gaze::backbones::PanConfig;
use gaze::weights::apply_checkpoint;

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn pan_on_wgpu_equals_cpu() {
    let gpu = crate::common::wgpu_device();
    let cpu = Device::flex();
    // Small reference PAN: the WGPU output also equals PyTorch's.
    let (checkpoint, outputs) = crate::common::split_fixture("pan/pan_x4.safetensors");
    let config = PanConfig::new(4).with_nf(8).with_unf(6).with_num_blocks(2);
    let pan = apply_checkpoint(
        config.init(&cpu),
        checkpoint,
        &gaze::backbones::pan::key_map(),
    )
    .unwrap();
    let x = crate::common::deterministic_input([2, 3, 12, 12], &cpu);
    let on_cpu = pan.forward(x.clone());
    let on_gpu = pan
        .clone()
        .to_device(&gpu)
        .forward(x.to_device(&gpu))
        .to_device(&cpu);
    let reference = Tensor::<4>::from_data(outputs["output_12x12"].clone().convert::<f32>(), &cpu);
    assert_close(
        "PAN x4 (fixture) wgpu vs cpu",
        on_gpu.clone(),
        on_cpu,
        WGPU_TOL,
    );
    assert_close(
        "PAN x4 (fixture) wgpu vs torch",
        on_gpu,
        reference,
        WGPU_TOL,
    );

    // The official x4 weights on a small crop of a real image.
    let Some(shared) = shared_dir() else { return };
    let model = gaze::create_model("pan_x4", &cpu)
        .unwrap()
        .load_weights(shared.join("weights/sr/pan/PANx4_DF2K.pth"))
        .unwrap();
    let lr =
        gaze::io::read_image(shared.join("data/sr/Set5/LR_bicubic/X4/butterflyx4.png")).unwrap();
    let x = lr.to_tensor(&cpu).slice([0..1, 0..3, 10..34, 20..52]);
    let on_cpu = model.forward(x.clone()).unwrap().into_image().unwrap();
    let on_gpu = model
        .to_device(&gpu)
        .forward(x.to_device(&gpu))
        .unwrap()
        .into_image()
        .unwrap()
        .to_device(&cpu);
    assert_close("PAN x4 (official) wgpu vs cpu", on_gpu, on_cpu, WGPU_TOL);
}

/// Runs `forward` on the CPU and on WGPU and compares (≤ [`WGPU_TOL`] absolute).
fn same_on_wgpu<M: burn::module::Module + Clone, const D: usize>(
    name: &str,
    net: M,
    x: Tensor<4>,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<D>,
) {
    let gpu = crate::common::wgpu_device();
    let cpu = Device::flex();
    let on_cpu = forward(&net, x.clone());
    let on_gpu = forward(&net.to_device(&gpu), x.to_device(&gpu)).to_device(&cpu);
    crate::common::assert_close(&format!("{name} wgpu vs cpu"), on_gpu, on_cpu, WGPU_TOL);
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn resnet_family_on_wgpu_equals_cpu() {
    use gaze::backbones::resnet::{BlockType, ResNetConfig, StemType};
    let cpu = Device::flex();
    let config = ResNetConfig::new(BlockType::ResNest, vec![1, 1, 1, 1])
        .with_channels(vec![8, 8, 16, 16])
        .with_stem_type(StemType::Deep)
        .with_stem_width(8)
        .with_avg_down(true)
        .with_num_classes(10);
    let x = crate::common::deterministic_input([1, 3, 45, 37], &cpu);
    same_on_wgpu("resnest", config.init(&cpu), x.clone(), |m, x| m.forward(x));
    let config = ResNetConfig::new(BlockType::Bottleneck, vec![1, 1, 1, 1])
        .with_channels(vec![8, 8, 16, 16])
        .with_attn_layer(Some(gaze::blocks::attention::AttentionKind::Cbam))
        .with_num_classes(10);
    same_on_wgpu("cbam resnet", config.init(&cpu), x, |m, x| m.forward(x));
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn vit_on_wgpu_equals_cpu() {
    use gaze::backbones::vit::VitConfig;
    let cpu = Device::flex();
    let net = VitConfig::new(32, 2, 2)
        .with_img_size(64)
        .with_num_classes(10)
        .init(&cpu);
    same_on_wgpu(
        "vit",
        net,
        crate::common::deterministic_input([1, 3, 80, 48], &cpu),
        |m, x| m.forward(x),
    );
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn swin_on_wgpu_equals_cpu() {
    use gaze::backbones::swin::SwinConfig;
    let cpu = Device::flex();
    let net = SwinConfig::new()
        .with_img_size([64, 64])
        .with_embed_dim(6)
        .with_depths(vec![2, 2, 2, 2])
        .with_num_heads(vec![1, 2, 2, 4])
        .with_window_size(4)
        .with_num_classes(10)
        .init(&cpu);
    // 96×56 pads to the window and merges an odd width.
    same_on_wgpu(
        "swin",
        net,
        crate::common::deterministic_input([1, 3, 96, 56], &cpu),
        |m, x| m.forward(x),
    );
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn levit_on_wgpu_equals_cpu() {
    use gaze::backbones::levit::LevitConfig;
    let cpu = Device::flex();
    // The fixture's weights: LeViT initialises its residual branches' norms to zero.
    let checkpoint = fixture_weights("levit/tiny_distilled.safetensors");
    let config = LevitConfig::new(vec![16, 24, 32], 8, vec![1, 1, 1], vec![2, 2, 2])
        .with_img_size([64, 64])
        .with_num_classes(10);
    let net = gaze::weights::apply_checkpoint(
        config.init(&cpu),
        checkpoint,
        &gaze::backbones::levit::key_map(),
    )
    .unwrap();
    same_on_wgpu(
        "levit",
        net,
        crate::common::deterministic_input([2, 3, 64, 64], &cpu),
        |m, x| m.forward(x),
    );
}

/// A fixture's network weights (logits and feature tensors dropped).
fn fixture_weights(file: &str) -> gaze::weights::Checkpoint {
    let mut checkpoint = gaze::weights::Checkpoint::open(crate::common::fixture(file)).unwrap();
    checkpoint
        .tensors
        .retain(|k, _| !k.starts_with("logits") && !k.starts_with("feature"));
    checkpoint
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn nat_and_biformer_on_wgpu_equal_cpu() {
    use gaze::backbones::biformer::BiFormerConfig;
    use gaze::backbones::nat::NatConfig;
    use gaze::weights::apply_checkpoint;
    let cpu = Device::flex();
    let nat = NatConfig::new(4, 3.0, vec![1, 1, 2, 1], vec![1, 2, 2, 4])
        .with_kernel_size(3)
        .with_num_classes(10);
    let nat = apply_checkpoint(
        nat.init(&cpu),
        fixture_weights("nat_biformer/nat_plain.safetensors"),
        &gaze::backbones::nat::key_map(),
    )
    .unwrap();
    same_on_wgpu(
        "nat",
        nat,
        crate::common::deterministic_input([1, 3, 112, 80], &cpu),
        |m, x| m.forward(x),
    );
    let biformer = BiFormerConfig::new(
        vec![1, 1, 1, 1],
        vec![8, 16, 16, 24],
        vec![3.0; 4],
        vec![8, 16, 16, 24],
    )
    .with_n_win(2)
    .with_topks(vec![1, 2, 2, -2])
    .with_head_dim(8)
    .with_num_classes(10);
    let biformer = apply_checkpoint(
        biformer.init(&cpu),
        fixture_weights("nat_biformer/biformer_plain.safetensors"),
        &gaze::backbones::biformer::key_map(),
    )
    .unwrap();
    same_on_wgpu(
        "biformer",
        biformer,
        crate::common::deterministic_input([1, 3, 64, 96], &cpu),
        |m, x| m.forward(x),
    );
}

#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn halonet_on_wgpu_equals_cpu() {
    use gaze::backbones::halonet::{
        interleave_blocks, ByoBlockType, ByoStageConfig, HaloKwargs, HaloNetConfig,
    };
    let cpu = Device::flex();
    let config = HaloNetConfig::new(vec![
        ByoStageConfig::repeat(ByoBlockType::Bottle, 1, 8, 1),
        ByoStageConfig::repeat(ByoBlockType::Bottle, 1, 32, 2),
        interleave_blocks(
            [ByoBlockType::Bottle, ByoBlockType::SelfAttn],
            2,
            1,
            false,
            64,
            2,
        ),
        ByoStageConfig::repeat(ByoBlockType::SelfAttn, 1, 128, 2),
    ])
    .with_stem_chs(8)
    .with_self_attn_kwargs(
        HaloKwargs::new()
            .with_block_size(4)
            .with_halo_size(1)
            .with_num_heads(2),
    )
    .with_num_classes(10);
    let net = gaze::weights::apply_checkpoint(
        config.init(&cpu),
        fixture_weights("halonet/tiny26t.safetensors"),
        &gaze::weights::KeyMap::identity(),
    )
    .unwrap();
    same_on_wgpu(
        "halonet",
        net,
        crate::common::deterministic_input([1, 3, 128, 64], &cpu),
        |m, x| m.forward(x),
    );
}

/// Every channel/spatial attention kind and SR block gives the CPU's output on WGPU (random
/// weights; the token mixers are checked with their families and in parity_token_na_bra).
#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn every_attention_block_on_wgpu_equals_cpu() {
    use gaze::blocks::attention::{create_attn, AttentionKind};
    use gaze::blocks::*;
    let cpu = Device::flex();
    let x = crate::common::deterministic_input([2, 16, 14, 12], &cpu);
    for kind in AttentionKind::ALL {
        same_on_wgpu(
            &format!("{kind}"),
            create_attn(kind, 16, &cpu),
            x.clone(),
            |m, x| m.forward(x),
        );
    }
    same_on_wgpu("RCAB", RcabConfig::new(16).init(&cpu), x.clone(), |m, x| {
        m.forward(x)
    });
    same_on_wgpu(
        "SC-PA",
        ScpaConfig::new(16).init(&cpu),
        x.clone(),
        |m, x| m.forward(x),
    );
    same_on_wgpu(
        "U-PA",
        UpaConfig::new(16, 8, 2).init(&cpu),
        x.clone(),
        |m, x| m.forward(x),
    );
    same_on_wgpu(
        "split attention",
        SplitAttnConfig::new(16, 16).init(&cpu),
        x.clone(),
        |m, x| m.forward(x),
    );
    for (name, config) in [
        (
            "residual attention stage 1",
            ResidualAttentionConfig::stage1(16),
        ),
        (
            "residual attention stage 3",
            ResidualAttentionConfig::stage3(16),
        ),
    ] {
        same_on_wgpu(name, config.init(&cpu), x.clone(), |m, x| m.forward(x));
    }
    // The gates take the skip features and a coarser gating signal.
    let g = crate::common::deterministic_input([2, 24, 7, 6], &cpu);
    let gate = GridAttentionGateConfig::new(16, 24).init(&cpu);
    let g1 = g.clone();
    same_on_wgpu("grid attention gate", gate, x.clone(), move |m, x| {
        m.forward(x.clone(), g1.clone().to_device(&x.device()))
    });
    let gate = AttentionUNetGateConfig::new(16, 16, 8).init(&cpu);
    same_on_wgpu("Attention U-Net gate", gate, x.clone(), |m, x| {
        m.forward(x.clone(), x)
    });
    // HAN's layer attention over 4 stacked groups.
    let groups = crate::common::deterministic_input([2, 4 * 8, 6, 5], &cpu);
    let lam = LayerAttentionConfig::new(8).init(&cpu);
    same_on_wgpu("HAN layer attention", lam, groups, |m, x| {
        m.forward(x.reshape([2, 4, 8, 6, 5]))
    });
}
