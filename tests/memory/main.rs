//! Memory claims, measured: the peak heap bytes of neighborhood and halo attention grow
//! linearly with the map size (while an explicit N×N attention, the control, grows
//! quadratically). A counting global
//! allocator sees every allocation of the process (the backend's worker threads included),
//! so this binary holds this one test and nothing runs beside it.

mod counting;

use counting::peak_bytes;

use burn::prelude::*;
use gaze::blocks::halo_attention::HaloAttnConfig;
use gaze::blocks::neighborhood_attention::NeighborhoodAttentionConfig;

const DIM: usize = 32;
const HEADS: usize = 2;
const SIDES: [usize; 3] = [24, 48, 96];

/// Peak bytes of one forward pass at each side of [`SIDES`] (inputs made beforehand): the
/// least of three measured passes after an unmeasured one. Buffers a kernel allocates once per
/// thread and keeps (gemm's packing space, sized by the problem) are not the attention's, and
/// which pool thread first meets a size varies from pass to pass (one CI run counted 1.7 MB of
/// them at 96²).
fn measure(name: &str, forward: impl Fn(usize) -> Box<dyn FnOnce()>) -> Vec<f64> {
    let peaks: Vec<f64> = SIDES
        .iter()
        .map(|&side| {
            forward(side)();
            (0..3)
                .map(|_| peak_bytes(forward(side)))
                .min()
                .expect("three passes") as f64
        })
        .collect();
    let per_token: Vec<String> = SIDES
        .iter()
        .zip(&peaks)
        .map(|(s, p)| {
            format!(
                "{s}²: {:.0} KiB ({:.0} B/token)",
                p / 1024.0,
                p / (s * s) as f64
            )
        })
        .collect();
    eprintln!("{name}: {}", per_token.join(", "));
    peaks
}

/// Growth exponent of peak memory in the token count between consecutive sizes.
fn exponents(peaks: &[f64]) -> Vec<f64> {
    peaks
        .windows(2)
        .zip(SIDES.windows(2))
        .map(|(p, s)| (p[1] / p[0]).ln() / (((s[1] * s[1]) as f64) / ((s[0] * s[0]) as f64)).ln())
        .collect()
}

#[test]
fn local_attention_memory_is_linear_in_the_map_size() {
    let device = Device::flex();
    let input = |side: usize| {
        Tensor::<4>::random(
            [1, side, side, DIM],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
    };
    // Warm up the backend's pools so their one-off allocations are not measured.
    let na = NeighborhoodAttentionConfig::new(DIM, HEADS)
        .with_kernel_size(7)
        .init(&device);
    let _ = na.forward(input(16)).sum().into_scalar::<f32>();

    let na_peaks = measure("neighborhood attention (k 7)", |side| {
        let x = input(side);
        let na = na.clone();
        Box::new(move || {
            let _ = na.forward(x).sum().into_scalar::<f32>();
        })
    });
    let halo = HaloAttnConfig::new(DIM)
        .with_num_heads(HEADS)
        .with_block_size(8)
        .with_halo_size(3)
        .init(&device);
    let halo_peaks = measure("halo attention (block 8, halo 3)", |side| {
        let x = input(side).permute([0, 3, 1, 2]);
        let halo = halo.clone();
        Box::new(move || {
            let _ = halo.forward(x).sum().into_scalar::<f32>();
        })
    });
    // The control: attention weights materialised explicitly, `softmax(x xᵀ)`, N×N.
    let global_peaks = measure("explicit N×N attention (control)", |side| {
        let x = input(side).reshape([side * side, DIM]);
        Box::new(move || {
            let weights =
                burn::tensor::activation::softmax(x.clone().matmul(x.clone().transpose()), 1);
            let _ = weights.matmul(x).sum().into_scalar::<f32>();
        })
    });

    for (name, peaks) in [("neighborhood", &na_peaks), ("halo", &halo_peaks)] {
        for e in exponents(peaks) {
            assert!(
                e < 1.2,
                "{name} attention: peak memory grows as tokens^{e:.2} ({peaks:?})"
            );
        }
    }
    // The control shows the measurement sees a quadratic term when there is one.
    let e = exponents(&global_peaks);
    eprintln!(
        "growth exponents: neighborhood {:?}, halo {:?}, global {:?}",
        exponents(&na_peaks),
        exponents(&halo_peaks),
        e
    );
    assert!(
        e[1] > 1.5,
        "the explicit N×N attention should grow quadratically: {global_peaks:?}"
    );
}
