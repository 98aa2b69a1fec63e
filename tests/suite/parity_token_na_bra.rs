//! Parity of neighborhood attention (NAT/DiNAT) and BiFormer's bi-level routing attention
//! against our PyTorch references of the official code (fixtures from
//! tests/reference/gen_token_na_bra_fixtures.py, which also cross-checks the references against
//! official code), max abs diff ≤ 1e-4; checkpoints load strictly. Also: the efficient NA path
//! equals the naive N × N one, and its memory is linear in H·W.

use crate::common::{assert_close, load_fixture};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use gaze::blocks::{
    BiLevelRoutingAttentionConfig, KvDownsampleMode, NeighborhoodAttention,
    NeighborhoodAttentionConfig, ParamAttention,
};
use gaze::weights::{apply_checkpoint, KeyMap};

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

/// Loads `token/<name>.safetensors` strictly, checks the parameter count and the output of
/// both NA paths.
fn check_na(name: &str, config: NeighborhoodAttentionConfig, params: usize) {
    let dev = device();
    let f = load_fixture(&format!("token/{name}.safetensors"), &dev);
    let block = apply_checkpoint(config.init(&dev), f.checkpoint, &KeyMap::identity()).unwrap();
    assert_eq!(block.num_params(), params, "{name}: parameter count");
    assert_close(name, block.forward(f.input.clone()), f.output.clone(), TOL);
    // On an autodiff device the forward runs as tensor ops (gathered windows), not the fused
    // CPU kernel: both must hold.
    let autodiff = dev.clone().autodiff();
    let gathered = block
        .clone()
        .to_device(&autodiff)
        .forward(f.input.clone().to_device(&autodiff));
    assert_close(
        &format!("{name} (tensor ops)"),
        Tensor::from_data(gathered.into_data(), &dev),
        f.output.clone(),
        TOL,
    );
    assert_close(
        &format!("{name} (naive)"),
        block.forward_naive(f.input),
        f.output,
        TOL,
    );
}

#[test]
fn na_k5_d1() {
    check_na(
        "na_k5_d1",
        NeighborhoodAttentionConfig::new(24, 3).with_kernel_size(5),
        2643,
    );
}

#[test]
fn na_k3_d2() {
    check_na(
        "na_k3_d2",
        NeighborhoodAttentionConfig::new(24, 3)
            .with_kernel_size(3)
            .with_dilation(2),
        2475,
    );
}

#[test]
fn na_k3_d3_uneven_dilation_groups() {
    check_na(
        "na_k3_d3_uneven",
        NeighborhoodAttentionConfig::new(12, 2)
            .with_kernel_size(3)
            .with_dilation(3),
        674,
    );
}

#[test]
fn na_legacy_pad_small_map() {
    check_na(
        "na_k5_legacy_pad",
        NeighborhoodAttentionConfig::new(24, 3)
            .with_kernel_size(5)
            .with_legacy_pad(true),
        2643,
    );
}

#[test]
#[should_panic(expected = "must be at least kernel_size × dilation")]
fn na_rejects_map_below_kernel_times_dilation() {
    let dev = device();
    let block = NeighborhoodAttentionConfig::new(8, 2)
        .with_kernel_size(3)
        .with_dilation(2)
        .init(&dev);
    block.forward(Tensor::zeros([1, 5, 8, 8], &dev));
}

/// A block with a non-trivial random `rpb` (the default init is tiny).
fn random_na(dim: usize, heads: usize, k: usize, d: usize, dev: &Device) -> NeighborhoodAttention {
    let mut block = NeighborhoodAttentionConfig::new(dim, heads)
        .with_kernel_size(k)
        .with_dilation(d)
        .init(dev);
    block.rpb = Some(Param::from_tensor(Tensor::random(
        [heads, 2 * k - 1, 2 * k - 1],
        Distribution::Normal(0.0, 1.0),
        dev,
    )));
    block
}

/// `block.forward(x)` run on `device` equals `forward_naive` on `x`'s device (≤ 1e-5).
fn assert_equals_naive(what: &str, block: NeighborhoodAttention, x: Tensor<4>, device: &Device) {
    let home = x.device();
    let want = block.forward_naive(x.clone());
    let got = block
        .to_device(device)
        .forward(x.to_device(device))
        .to_device(&home);
    assert_close(what, got, want, 1e-5);
}

#[test]
fn na_efficient_equals_naive() {
    let dev = device();
    dev.seed(7);
    // (k, d, B, H, W): borders, uneven dilation groups, H = k·d exactly, non-square.
    let cases = [
        (3, 1, 2, 3, 5),
        (3, 1, 1, 9, 7),
        (5, 1, 1, 5, 12),
        (7, 1, 1, 13, 8),
        (3, 2, 1, 6, 11),
        (3, 3, 2, 10, 14),
        (5, 2, 1, 13, 10),
        (3, 4, 1, 12, 15),
        (5, 3, 1, 15, 17),
        // Wide rows: the CPU kernel's blocks of sixteen queries between the borders.
        (7, 1, 1, 9, 40),
        (5, 1, 2, 6, 37),
        (3, 1, 1, 4, 52),
        (3, 2, 1, 6, 40),
    ];
    for (k, d, b, h, w) in cases {
        let block = random_na(12, 3, k, d, &dev);
        let x = Tensor::<4>::random([b, h, w, 12], Distribution::Normal(0.0, 1.0), &dev);
        let what = format!("NA k={k} d={d} {b}x{h}x{w}: efficient vs naive");
        assert_equals_naive(&what, block, x, &dev);
    }
    // Also without the relative position bias.
    let block = NeighborhoodAttentionConfig::new(8, 2)
        .with_kernel_size(3)
        .with_dilation(2)
        .with_rel_pos_bias(false)
        .init(&dev);
    assert_eq!(block.num_params(), 8 * 24 + 24 + 8 * 8 + 8);
    let x = Tensor::<4>::random([1, 7, 9, 8], Distribution::Normal(0.0, 1.0), &dev);
    assert_equals_naive("NA without rpb: efficient vs naive", block, x, &dev);
    let block = NeighborhoodAttentionConfig::new(8, 2)
        .with_kernel_size(5)
        .with_rel_pos_bias(false)
        .init(&dev);
    let x = Tensor::<4>::random([1, 6, 35, 8], Distribution::Normal(0.0, 1.0), &dev);
    assert_equals_naive(
        "NA without rpb, wide rows: efficient vs naive",
        block,
        x,
        &dev,
    );
}

#[test]
fn na_window_tables_match_natten() {
    use gaze::blocks::neighborhood_attention::{pb_start, window_start};
    // Hand-checked NATTEN values: L = 10, k = 3, d = 2 → groups {0,2,4,6,8}, {1,3,5,7,9}.
    let starts: Vec<usize> = (0..10).map(|i| window_start(i, 10, 3, 2)).collect();
    assert_eq!(starts, [0, 1, 0, 1, 2, 3, 4, 5, 4, 5]);
    let pb: Vec<usize> = (0..10).map(|i| pb_start(i, 10, 3, 2)).collect();
    assert_eq!(pb, [2, 2, 1, 1, 1, 1, 1, 1, 0, 0]);
    // Uneven groups: L = 11, k = 3, d = 3 → {0,3,6,9}, {1,4,7,10}, {2,5,8}.
    let starts: Vec<usize> = (0..11).map(|i| window_start(i, 11, 3, 3)).collect();
    assert_eq!(starts, [0, 1, 2, 0, 1, 2, 3, 4, 2, 3, 4]);
    // d = 1: windows clamp at both ends.
    let starts: Vec<usize> = (0..7).map(|i| window_start(i, 7, 5, 1)).collect();
    assert_eq!(starts, [0, 0, 0, 1, 2, 2, 2]);
    let pb: Vec<usize> = (0..7).map(|i| pb_start(i, 7, 5, 1)).collect();
    assert_eq!(pb, [4, 3, 2, 2, 2, 1, 0]);
}

#[test]
fn na_memory_is_linear_in_tokens() {
    let dev = device();
    let (dim, heads, k) = (32usize, 8usize, 7usize);
    let block = NeighborhoodAttentionConfig::new(dim, heads)
        .with_kernel_size(k)
        .init(&dev);
    let mut largest_at = Vec::new();
    for (h, w) in [(64usize, 64usize), (112, 112)] {
        let b = 1;
        let largest = block.largest_intermediate_elems(b, h, w);
        let n = h * w;
        // The gathered keys/values, [B, heads, H, W, k², head_dim]: B·H·W·k²·C.
        assert_eq!(largest, b * n * k * k * dim, "{h}x{w}: B·H·W·k²·C");
        let plan = block.plan([b, h, w, dim]);
        assert_eq!(plan.window, [b, heads, h, w, k * k, dim / heads]);
        for (name, elems) in plan.intermediates() {
            assert!(elems <= largest, "{name}: {elems} elements");
        }
        // Per channel H·W·k², against the (H·W)² of a full attention matrix; and against the
        // B·heads·(H·W)² logits the naive path builds.
        let per_channel = largest / (b * dim);
        assert_eq!(per_channel, n * k * k);
        assert!(per_channel * 50 < n * n, "{h}x{w}: not far below (H·W)²");
        let naive_logits = b * heads * n * n;
        assert!(
            largest * 16 < naive_logits,
            "{h}x{w}: not far below the naive logits"
        );
        eprintln!(
            "NA {h}x{w} k={k} C={dim}: largest intermediate {largest} elements \
             (H·W·k² = {per_channel} per channel; (H·W)² = {}; naive logits {naive_logits}, \
             {:.1}× more)",
            n * n,
            naive_logits as f64 / largest as f64
        );
        largest_at.push(largest);
    }
    // Linear: 112² / 64² more tokens, exactly that much more memory.
    assert_eq!(largest_at[1] * 64 * 64, largest_at[0] * 112 * 112);
    // The plan is what forward builds: run it at 64×64.
    let x = Tensor::<4>::random([1, 64, 64, dim], Distribution::Normal(0.0, 1.0), &dev);
    assert_eq!(block.forward(x).dims(), [1, 64, 64, dim]);
}

fn check_bra(name: &str, config: BiLevelRoutingAttentionConfig, params: usize) {
    let dev = device();
    let f = load_fixture(&format!("token/{name}.safetensors"), &dev);
    let block = apply_checkpoint(config.init(&dev), f.checkpoint, &KeyMap::identity()).unwrap();
    assert_eq!(block.num_params(), params, "{name}: parameter count");
    assert_close(name, block.forward(f.input), f.output, TOL);
}

#[test]
fn bra_identity_kv() {
    check_bra(
        "bra_nwin3_top2",
        BiLevelRoutingAttentionConfig::new(32)
            .with_num_heads(4)
            .with_n_win(3)
            .with_topk(2)
            .with_side_dwconv(5),
        5056,
    );
}

#[test]
fn bra_auto_pad() {
    check_bra(
        "bra_auto_pad",
        BiLevelRoutingAttentionConfig::new(32)
            .with_num_heads(4)
            .with_n_win(3)
            .with_topk(2)
            .with_side_dwconv(5)
            .with_auto_pad(true),
        5056,
    );
}

#[test]
fn bra_ada_avgpool_qk_dim() {
    check_bra(
        "bra_ada_avgpool_qk4",
        BiLevelRoutingAttentionConfig::new(8)
            .with_qk_dim(Some(4))
            .with_num_heads(2)
            .with_n_win(3)
            .with_topk(3)
            .with_kv_per_win(2)
            .with_kv_downsample_mode(KvDownsampleMode::AdaAvgPool)
            .with_side_dwconv(3),
        296,
    );
}

#[test]
fn bra_soft_param_routing_ada_maxpool() {
    check_bra(
        "bra_soft_param_ada_maxpool",
        BiLevelRoutingAttentionConfig::new(8)
            .with_num_heads(2)
            .with_n_win(3)
            .with_topk(2)
            .with_kv_per_win(3)
            .with_kv_downsample_mode(KvDownsampleMode::AdaMaxPool)
            .with_param_routing(true)
            .with_diff_routing(true)
            .with_soft_routing(true)
            .with_param_attention(ParamAttention::Qkv)
            .with_side_dwconv(0),
        288,
    );
}

#[test]
fn bra_avgpool() {
    check_bra(
        "bra_avgpool2",
        BiLevelRoutingAttentionConfig::new(8)
            .with_num_heads(2)
            .with_n_win(3)
            .with_topk(4)
            .with_kv_downsample_ratio(2)
            .with_kv_downsample_mode(KvDownsampleMode::AvgPool)
            .with_side_dwconv(3),
        368,
    );
}

#[test]
fn bra_maxpool() {
    check_bra(
        "bra_maxpool2",
        BiLevelRoutingAttentionConfig::new(8)
            .with_num_heads(2)
            .with_n_win(2)
            .with_topk(2)
            .with_kv_downsample_ratio(2)
            .with_kv_downsample_mode(KvDownsampleMode::MaxPool)
            .with_side_dwconv(5),
        496,
    );
}

#[test]
fn bra_routing_shapes() {
    let dev = device();
    let block = BiLevelRoutingAttentionConfig::new(16)
        .with_num_heads(2)
        .with_n_win(2)
        .with_topk(3)
        .init(&dev);
    let x = Tensor::<4>::random([2, 6, 8, 16], Distribution::Normal(0.0, 1.0), &dev);
    let (y, weight, index) = block.forward_with_routing(x);
    assert_eq!(y.dims(), [2, 6, 8, 16]);
    assert_eq!(weight.dims(), [2, 4, 3]);
    assert_eq!(index.dims(), [2, 4, 3]);
    let sums = weight.sum_dim(2).reshape([8]);
    assert_close(
        "routing weights sum to 1",
        sums,
        Tensor::ones([8], &dev),
        1e-5,
    );
}

#[test]
#[should_panic(expected = "must be divisible by n_win")]
fn bra_rejects_indivisible_map_without_auto_pad() {
    let dev = device();
    let block = BiLevelRoutingAttentionConfig::new(8)
        .with_num_heads(2)
        .with_n_win(3)
        .with_topk(2)
        .init(&dev);
    block.forward(Tensor::zeros([1, 10, 9, 8], &dev));
}

/// The WGPU kernel (`forward` on a WGPU tensor without autodiff: one CubeCL kernel) equals
/// the N × N oracle computed on the CPU from the same weights: borders, dilation groups,
/// batches, `legacy_pad`, no bias.
#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn na_wgpu_kernel_equals_naive() {
    let gpu = crate::common::wgpu_device();
    let cpu = device();
    cpu.seed(11);
    // (k, d, B, H, W)
    let cases = [
        (3, 1, 2, 3, 5),
        (7, 1, 1, 13, 8),
        (3, 3, 2, 10, 14),
        (5, 2, 1, 13, 10),
        (7, 1, 1, 9, 40),
    ];
    for (k, d, b, h, w) in cases {
        let block = random_na(12, 3, k, d, &cpu);
        let x = Tensor::<4>::random([b, h, w, 12], Distribution::Normal(0.0, 1.0), &cpu);
        let what = format!("NA k={k} d={d} {b}x{h}x{w}: wgpu kernel vs naive");
        assert_equals_naive(&what, block, x, &gpu);
    }
    let block = NeighborhoodAttentionConfig::new(8, 2)
        .with_kernel_size(5)
        .with_rel_pos_bias(false)
        .with_legacy_pad(true)
        .init(&cpu);
    let x = Tensor::<4>::random([1, 3, 7, 8], Distribution::Normal(0.0, 1.0), &cpu);
    assert_equals_naive(
        "NA legacy pad, no rpb: wgpu kernel vs naive",
        block,
        x,
        &gpu,
    );
}

/// Both blocks on the WGPU device (Mesa lavapipe in CI) give the PyTorch outputs.
#[test]
#[cfg_attr(gaze_no_wgpu, ignore = "no WGPU adapter (install mesa-vulkan-drivers)")]
fn na_and_bra_on_wgpu() {
    let gpu = crate::common::wgpu_device();
    let cpu = device();
    let f = load_fixture("token/na_k3_d2.safetensors", &cpu);
    let na = NeighborhoodAttentionConfig::new(24, 3)
        .with_kernel_size(3)
        .with_dilation(2)
        .init(&cpu);
    let na = apply_checkpoint(na, f.checkpoint, &KeyMap::identity())
        .unwrap()
        .to_device(&gpu);
    let y = na.forward(f.input.clone().to_device(&gpu)).to_device(&cpu);
    assert_close("NA k3 d2 on wgpu", y, f.output.clone(), TOL);
    let y = na.forward_naive(f.input.to_device(&gpu)).to_device(&cpu);
    assert_close("NA k3 d2 naive on wgpu", y, f.output, TOL);

    let f = load_fixture("token/bra_auto_pad.safetensors", &cpu);
    let bra = BiLevelRoutingAttentionConfig::new(32)
        .with_num_heads(4)
        .with_n_win(3)
        .with_topk(2)
        .with_side_dwconv(5)
        .with_auto_pad(true)
        .init(&cpu);
    let bra = apply_checkpoint(bra, f.checkpoint, &KeyMap::identity())
        .unwrap()
        .to_device(&gpu);
    let y = bra.forward(f.input.to_device(&gpu)).to_device(&cpu);
    assert_close("BRA auto_pad on wgpu", y, f.output, TOL);
}
