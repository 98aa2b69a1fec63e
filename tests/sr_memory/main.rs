//! Memory claim of tiled super-resolution, measured: `gaze::sr::upscale_image_to_png` holds one
//! band of tiles, so its peak heap grows with the image height only by a small fraction of
//! what running the image whole (the control) adds. A counting global allocator sees every allocation
//! of the process, so this binary holds this one test and nothing runs beside it. The PNG
//! written band by band equals the tiled in-memory result.

#[path = "../memory/counting.rs"]
mod counting;

use counting::peak_bytes;

use burn::prelude::*;
use gaze::io::Image;
use gaze::sr::{upscale_image_to_png, upscale_image_with, SrOptions, Tiling};

/// A smooth synthetic 8-bit RGB image.
fn photo(h: usize, w: usize) -> Image {
    let pixels = ndarray::Array3::from_shape_fn((h, w, 3), |(y, x, c)| {
        (127.5 + 120.0 * (0.05 * y as f32 + 0.09 * x as f32 + 2.0 * c as f32).sin()) as u8
    });
    Image::from_rgb8(&pixels)
}

const WIDTH: usize = 200;
const HEIGHTS: [usize; 2] = [160, 640];

#[test]
fn tiled_png_output_memory_does_not_grow_with_the_image() {
    let device = Device::flex();
    let model = gaze::create_model("pan_x2", &device).unwrap();
    let options = SrOptions {
        tiling: Some(Tiling {
            tile: 80,
            overlap: 40,
        }),
        ..SrOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    // Warm up the backend's pools so their one-off allocations are not measured.
    upscale_image_to_png(
        &model,
        &photo(40, 40),
        &device,
        options,
        &dir.path().join("w.png"),
        |_, _| {},
    )
    .unwrap();

    let mut banded = Vec::new();
    let mut whole = Vec::new();
    for h in HEIGHTS {
        let img = photo(h, WIDTH);
        let path = dir.path().join(format!("out{h}.png"));
        banded.push(peak_bytes(|| {
            upscale_image_to_png(&model, &img, &device, options, &path, |_, _| {}).unwrap()
        }) as f64);
        whole.push(peak_bytes(|| {
            let _ = upscale_image_with(&model, &img, &device, SrOptions::default()).unwrap();
        }) as f64);
        // The streamed PNG is the tiled result.
        let tiled = upscale_image_with(&model, &img, &device, options)
            .unwrap()
            .to_rgb8();
        let written = gaze::io::read_image(&path).unwrap().to_rgb8();
        assert_eq!(
            written, tiled,
            "{h} rows: PNG differs from the tiled result"
        );
    }
    let mib = |b: f64| b / (1 << 20) as f64;
    eprintln!(
        "peak heap, {WIDTH} px wide, heights {HEIGHTS:?}: banded {:.1} → {:.1} MiB, whole image {:.1} → {:.1} MiB",
        mib(banded[0]),
        mib(banded[1]),
        mib(whole[0]),
        mib(whole[1])
    );
    // Four times the rows: the whole-image peak grows with the image (the control), the banded
    // one by a small fraction of that (the input tensor itself, 12 bytes a pixel, and the
    // backend's buffers of more tiles; measured 34 → 47 MiB against 53 → 206 MiB).
    let (banded_growth, whole_growth) = (banded[1] - banded[0], whole[1] - whole[0]);
    assert!(
        whole[1] > 2.5 * whole[0],
        "control: the whole-image peak should grow: {whole:?}"
    );
    assert!(
        banded_growth < 0.15 * whole_growth,
        "banded peak grew {banded_growth} bytes, the whole-image one {whole_growth}"
    );
}
