//! `gaze::degrade` is MATLAB's `imresize(modcrop(hr, s), 1/s, 'bicubic')` bit for bit: degrading
//! the HR images of Set5 and Set14 gives their published `LR_bicubic` files (made with MATLAB)
//! with zero differing pixels at ×2, ×3 and ×4 (RGB and the gray `bridge`). Needs ../shared.

use crate::common::shared_dir;
use gaze::degrade::{degrade, imresize};
use gaze::io::{read_image, Image};

fn levels(img: &Image) -> Vec<u8> {
    img.rgb.iter().map(|&v| (v * 255.0).round() as u8).collect()
}

#[test]
#[cfg_attr(gaze_no_shared, ignore = "../shared not found (set GAZE_SHARED)")]
fn set5_and_set14_lr_files_bit_exact() {
    let Some(shared) = shared_dir() else { return };
    let mut compared = 0;
    for set in ["Set5", "Set14"] {
        let dir = shared.join("data/sr").join(set);
        for hr_path in gaze::sr::image_files(&dir.join("HR")).unwrap() {
            let hr = read_image(&hr_path).unwrap();
            let stem = hr_path.file_stem().unwrap().to_str().unwrap();
            for scale in [2, 3, 4] {
                let lr = degrade(&hr, scale).unwrap();
                let reference = read_image(
                    dir.join(format!("LR_bicubic/X{scale}"))
                        .join(format!("{stem}x{scale}.png")),
                )
                .unwrap();
                assert_eq!(
                    (lr.width, lr.height, lr.gray),
                    (reference.width, reference.height, reference.gray),
                    "{set}/{stem} x{scale}: size"
                );
                let (ours, theirs) = (levels(&lr), levels(&reference));
                let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
                assert_eq!(differing, 0, "{set}/{stem} x{scale}: differing samples");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3 * (5 + 14));
}

#[test]
fn sixteen_bit_alpha_and_upscaling_keep_their_kind() {
    // A 16-bit gray image with alpha: resized at 16 bits, alpha too, gray kept.
    let (w, h) = (10, 7);
    let ramp: Vec<f32> = (0..w * h).map(|i| i as f32 / (w * h) as f32).collect();
    let img = Image {
        width: w,
        height: h,
        rgb: ramp.iter().flat_map(|&v| [v, v, v]).collect(),
        alpha: Some(vec![1.0; w * h]),
        gray: true,
        sixteen_bit: true,
    };
    let small = degrade(&img, 2).unwrap();
    assert_eq!((small.width, small.height), (5, 3));
    assert!(small.gray && small.sixteen_bit);
    assert!(small.alpha.as_ref().unwrap().iter().all(|&a| a == 1.0));
    // 16-bit levels, not 8-bit ones.
    assert!(small
        .rgb
        .iter()
        .any(|&v| ((v * 255.0) - (v * 255.0).round()).abs() > 1e-3));
    // Upscaling (no antialiasing) of a constant stays constant; sizes are ceil(scale · size).
    let big = imresize(
        &Image::from_rgb8(&ndarray::Array3::from_elem((5, 3, 3), 31u8)),
        2.5,
    )
    .unwrap();
    assert_eq!((big.height, big.width), (13, 8));
    assert!(levels(&big).iter().all(|&v| v == 31));
    assert!(degrade(&img, 1).is_err());
    assert!(degrade(&img, 8).is_err());
}
